"""DXLink (dxFeed over websockets) as Tastytrade serves it: protocol codec and a reconnecting client."""

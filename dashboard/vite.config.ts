// Vite build of the dashboard: everything into dist/ with hashed files under /assets/, nothing from a CDN.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // Inline nothing as data: URLs, so the page's every resource is a request to the gateway's origin.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
    chunkSizeWarningLimit: 900,
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
  },
});

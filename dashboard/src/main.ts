/** Entry point: the gateway client on this page's origin, and the app mounted on #app. */

import "./styles.css";
import { App } from "./app";
import { Client } from "./client";

const mount = document.getElementById("app");
if (mount) new App(new Client(sessionStorage), sessionStorage, mount);

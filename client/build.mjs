// `npm run build` (also npm pack's prepack): dist/index.js (the ES module), dist/visitor-sessions.min.js
// (the <script> bundle that defines the global VisitorSessions; package.json's unpkg), and the
// declarations (tsc --emitDeclarationOnly). No network: esbuild and typescript from node_modules.

import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true });
const common = { entryPoints: ["src/index.ts"], bundle: true, target: "es2020", sourcemap: true, logLevel: "warning" };
await build({ ...common, format: "esm", outfile: "dist/index.js" });
await build({ ...common, format: "iife", globalName: "VisitorSessions", minify: true, outfile: "dist/visitor-sessions.min.js" });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", ".", "--emitDeclarationOnly"], { stdio: "inherit" });

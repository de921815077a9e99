#!/usr/bin/env node
// The Firestore emulator of the local stack and the tests (never deployed).
//
//   node devtools/firestore_emulator.js --port 8085 [--data-file PATH]
//
// gRPC (what google-cloud-firestore speaks through FIRESTORE_EMULATOR_HOST) is
// served by @firestore-emulator/server, in memory. That package has no REST
// interface and no reset, so this launcher adds, on the same port as the real
// Firestore emulator does, a small HTTP/1.1 side for curl and the tests:
//
//   GET    /                                                     "Ok" (readiness)
//   GET    /v1/projects/P/databases/(default)/documents/C/ID     a document, in the REST API's JSON shape
//   GET    /v1/projects/P/databases/(default)/documents/C        the documents of a collection
//   GET    /emulator/v1/projects/P/databases/(default)/documents every document of every collection
//                                                                (all projects; the SDK's listCollections
//                                                                is not implemented by the emulator)
//   DELETE /emulator/v1/projects/P/databases/(default)/documents forget every document (all projects)
//
// Each connection is routed by its first bytes: an HTTP/2 preface (gRPC) goes
// to the emulator's gRPC server on an internal loopback port, anything else to
// the HTTP/1.1 side.
//
// With --data-file, the documents are written to PATH when the emulator is
// stopped (SIGTERM, SIGINT) and read back when it starts, as the Firebase
// emulator's --export-on-exit and --import do: a stop and start is then an
// outage, not a loss of data (the fault tests rely on it).
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const { FirestoreServer, FirestoreStateDocument } = require("@firestore-emulator/server");
const { Document } = require("@firestore-emulator/proto/dist/google/firestore/v1/document");
const { Write } = require("@firestore-emulator/proto/dist/google/firestore/v1/write");

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0");

function parsePort(argv) {
  const index = argv.indexOf("--port");
  const port = Number(index >= 0 ? argv[index + 1] : process.env.PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error("usage: node devtools/firestore_emulator.js --port PORT [--data-file PATH]");
    process.exit(2);
  }
  return port;
}

function option(argv, name) {
  const index = argv.indexOf(name);
  return index >= 0 ? argv[index + 1] : undefined;
}

function freeLoopbackPort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function rfc3339({ seconds, nanos }) {
  const iso = new Date(Number(seconds) * 1000).toISOString(); // ...T12:00:00.000Z
  return `${iso.slice(0, 19)}.${String(nanos || 0).padStart(9, "0")}Z`;
}

// The emulator's value objects ({integer_value: 3}) in the REST API's shape ({integerValue: "3"}).
function restValue(value) {
  if ("null_value" in value) return { nullValue: null };
  if ("boolean_value" in value) return { booleanValue: value.boolean_value };
  if ("integer_value" in value) return { integerValue: String(value.integer_value) };
  if ("double_value" in value) return { doubleValue: value.double_value };
  if ("timestamp_value" in value) return { timestampValue: rfc3339(value.timestamp_value) };
  if ("string_value" in value) return { stringValue: value.string_value };
  if ("bytes_value" in value) return { bytesValue: Buffer.from(value.bytes_value).toString("base64") };
  if ("reference_value" in value) return { referenceValue: value.reference_value };
  if ("geo_point_value" in value) return { geoPointValue: value.geo_point_value };
  if ("array_value" in value) return { arrayValue: { values: (value.array_value.values || []).map(restValue) } };
  if ("map_value" in value) return { mapValue: { fields: restFields(value.map_value.fields || {}) } };
  return { unknownValue: value };
}

function restFields(fields) {
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, restValue(value)]));
}

function restDocument(document) {
  const object = document.toV1DocumentObject();
  return {
    name: object.name,
    fields: restFields(object.fields),
    createTime: rfc3339(object.create_time),
    updateTime: rfc3339(object.update_time),
  };
}

// --- Queries by document name -------------------------------------------------
//
// Firestore orders and filters by a document's name as by a field, `__name__`
// (FieldPath.documentId(); a page of a collection: where __name__ > the last one,
// ordered by __name__). The emulator knows fields only: a filter on `__name__`
// matched no document and an order by it kept the order of writing. Here a
// document's `__name__` is its reference, compared segment by segment as
// Firestore compares references (within one collection: by document id).

class DocumentName {
  constructor(value) {
    this.type = "reference_value";
    this.value = value;
  }

  compare(other) {
    if (!other || other.type !== "reference_value") return NaN; // not comparable: no match
    const mine = this.value.split("/");
    const theirs = other.value.split("/");
    for (let i = 0; i < Math.min(mine.length, theirs.length); i++) {
      if (mine[i] !== theirs[i]) return mine[i] < theirs[i] ? -1 : 1;
    }
    return mine.length - theirs.length;
  }

  eq(other) { return this.compare(other) === 0; }
  lt(other) { return this.compare(other) < 0; }
  lte(other) { return this.compare(other) <= 0; }
  gt(other) { return this.compare(other) > 0; }
  gte(other) { return this.compare(other) >= 0; }
  toJSON() { return { type: this.type, value: this.value }; }
  toV1ValueObject() { return { reference_value: this.value }; }
}

const fieldOf = FirestoreStateDocument.prototype.getField;
FirestoreStateDocument.prototype.getField = function getField(path) {
  return path === "__name__" ? new DocumentName(this.getPath()) : fieldOf.call(this, path);
};

// --- --data-file: every existing document, as its gRPC Document in base64 ---

function existingDocuments(state) {
  const found = [];
  const walk = (collections) => {
    for (const collection of Object.values(collections)) {
      for (const entry of Object.values(collection.documents)) {
        const document = state.getDocument(entry.path);
        if (document.metadata.hasExist) found.push(document);
        walk(entry.collections);
      }
    }
  };
  for (const project of Object.values(state.toJSON().projects)) {
    for (const database of Object.values(project.databases)) walk(database.collections);
  }
  return found;
}

function saveDocuments(state, path) {
  const documents = existingDocuments(state).map((document) => ({
    createdAt: document.metadata.createdAt.toISOString(),
    updatedAt: document.metadata.updatedAt.toISOString(),
    document: Buffer.from(document.toV1Document().serializeBinary()).toString("base64"),
  }));
  fs.writeFileSync(`${path}.tmp`, JSON.stringify({ documents }));
  fs.renameSync(`${path}.tmp`, path); // a stop during the write leaves the previous file
  return documents.length;
}

function loadDocuments(state, path) {
  if (!fs.existsSync(path)) return 0;
  const { documents } = JSON.parse(fs.readFileSync(path, "utf8"));
  for (const saved of documents) {
    const { name, fields } = Document.deserializeBinary(Buffer.from(saved.document, "base64"));
    state.writeV1Document(new Date(saved.createdAt), new Write({ update: new Document({ name, fields }) }));
    const document = state.getDocument(name);
    document.metadata = { ...document.metadata, updatedAt: new Date(saved.updatedAt) };
  }
  return documents.length;
}

function answer(response, status, body) {
  const text = JSON.stringify(body, null, 2) + "\n";
  response.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}

function httpSide(state) {
  return http.createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://localhost").pathname);
    try {
      if (request.method === "GET" && path === "/") {
        response.end("Ok\n");
      } else if (request.method === "DELETE" && /^\/emulator\/v1\/projects\/[^/]+\/databases\/[^/]+\/documents$/.test(path)) {
        state.clear();
        answer(response, 200, {});
      } else if (request.method === "GET" && /^\/emulator\/v1\/projects\/[^/]+\/databases\/[^/]+\/documents$/.test(path)) {
        answer(response, 200, { documents: existingDocuments(state).map(restDocument) });
      } else if (request.method === "GET" && /^\/v1\/projects\/[^/]+\/databases\/[^/]+\/documents\/.+/.test(path)) {
        const name = path.slice("/v1/".length).replace(/\/$/, "");
        const segments = name.split("/").length - 5; // after projects/P/databases/D/documents
        if (segments % 2 === 1) {
          const documents = state.getCollection(name).getAllDocuments().filter((d) => d.metadata.hasExist);
          answer(response, 200, { documents: documents.map(restDocument) });
        } else {
          const document = state.getDocument(name);
          if (document.metadata.hasExist) answer(response, 200, restDocument(document));
          else answer(response, 404, { error: { code: 404, message: `Document "${name}" not found.`, status: "NOT_FOUND" } });
        }
      } else {
        answer(response, 404, { error: { code: 404, message: `No route for ${request.method} ${path}.`, status: "NOT_FOUND" } });
      }
    } catch (error) {
      answer(response, 400, { error: { code: 400, message: String(error.message || error), status: "INVALID_ARGUMENT" } });
    }
  });
}

async function main() {
  const port = parsePort(process.argv.slice(2));
  const dataFile = option(process.argv.slice(2), "--data-file");
  const emulator = new FirestoreServer();
  if (dataFile) console.log(`loaded ${loadDocuments(emulator.state, dataFile)} documents from ${dataFile}`);
  const grpcPort = await freeLoopbackPort();
  await emulator.start(grpcPort);
  const web = httpSide(emulator.state);

  const front = net.createServer((socket) => {
    let head = Buffer.alloc(0);
    socket.on("error", () => socket.destroy());
    const route = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HTTP2_PREFACE.length && HTTP2_PREFACE.subarray(0, head.length).equals(head)) return;
      socket.removeListener("data", route);
      socket.pause();
      if (head.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE)) {
        const upstream = net.connect(grpcPort, "127.0.0.1");
        // Small gRPC frames both ways: without this, Nagle's algorithm and delayed
        // ACKs add tens of milliseconds to every call.
        socket.setNoDelay(true);
        upstream.setNoDelay(true);
        upstream.on("error", () => socket.destroy());
        socket.on("close", () => upstream.destroy());
        upstream.on("close", () => socket.destroy());
        upstream.write(head);
        socket.pipe(upstream).pipe(socket);
        socket.resume();
      } else {
        socket.unshift(head);
        web.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", route);
  });
  front.listen(port, "127.0.0.1", () => {
    console.log(`Firestore emulator (@firestore-emulator/server) on 127.0.0.1:${port} (gRPC and HTTP)`);
  });
  front.on("error", (error) => {
    console.error(`Firestore emulator: ${error.message}`);
    process.exit(1);
  });

  const stop = () => {
    front.close();
    // Synchronous, so no write can land between the save and the exit.
    if (dataFile) console.log(`saved ${saveDocuments(emulator.state, dataFile)} documents to ${dataFile}`);
    emulator.stop();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

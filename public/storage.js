// Uploads to the Storage emulator's JSON API (the dev server proxies it same-origin at
// /storage, since gcp-storage-emulator sends no CORS headers), and waiting for the
// metadata that on_upload_finalized writes on the object.

import { ApiError } from "./client.js";

export class Storage {
  constructor({ storageUrl, bucket }) {
    this.base = storageUrl.replace(/\/$/, "");
    this.bucket = bucket;
  }

  async upload(name, file) {
    const url = `${this.base}/upload/storage/v1/b/${encodeURIComponent(this.bucket)}/o` +
      `?uploadType=media&name=${encodeURIComponent(name)}`;
    const response = await this.fetch(url, {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    return response.json();
  }

  async object(name) {
    const url = `${this.base}/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(name)}`;
    return (await this.fetch(url)).json();
  }

  // Poll until the trigger has tagged the object (its metadata has visitorNumber).
  async waitForMetadata(name, { timeoutMs = 20_000, intervalMs = 300 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const object = await this.object(name);
      if (object.metadata && "sessionId" in object.metadata) return object.metadata;
      if (Date.now() > deadline) {
        throw new ApiError("timeout", "The upload was not tagged in time (is the storage trigger running?)");
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  async fetch(url, options) {
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError("network", `Could not reach Storage: ${error.message}`);
    }
    if (!response.ok) throw new ApiError("storage", `Storage answered HTTP ${response.status}`, response.status);
    return response;
  }
}

// Uploads with the Firebase JS SDK's firebase/storage (uploadBytes), each with its upload ticket
// (create_upload_ticket) in the object's custom metadata, and waiting for the metadata that
// on_upload_finalized writes on the object (getMetadata's customMetadata).
// The same code runs in production and in dev, where connectStorageEmulator points the SDK at
// the dev server (config.storageEmulatorHost), which serves the Firebase Storage API on top of
// the stack's Storage emulator (devtools/firebase_storage.py). A signed-in user's ID token goes
// with each request (the SDK adds it); storage.rules allows writes under sessions/{sessionId}/.

import { connectStorageEmulator, getMetadata, getStorage, ref, uploadBytes } from "firebase/storage";

import { ApiError } from "./client.js";

export class Storage {
  // app: the Firebase app (the one Auth uses, so the SDK sends the user's token).
  constructor(app, { bucket, storageEmulatorHost }) {
    this.storage = getStorage(app, bucket ? `gs://${bucket}` : undefined);
    if (storageEmulatorHost) {
      const [host, port] = storageEmulatorHost.split(":");
      connectStorageEmulator(this.storage, host, Number(port || 80));
    }
  }

  // name: the ticket's path (sessions/{sessionId}/{fileName}); ticket: its ticket, which
  // storage.rules require and the storage trigger verifies (without it the file is deleted).
  async upload(name, file, ticket) {
    try {
      await uploadBytes(ref(this.storage, name), file, {
        contentType: file.type || "application/octet-stream",
        customMetadata: { uploadTicket: ticket },
      });
    } catch (error) {
      throw storageError("The upload failed", error);
    }
  }

  // The object's custom metadata ({} when it has none).
  async metadata(name) {
    try {
      return (await getMetadata(ref(this.storage, name))).customMetadata || {};
    } catch (error) {
      throw storageError("Could not read the upload's metadata", error);
    }
  }

  // Poll until the trigger has tagged the object (its metadata has sessionId).
  async waitForMetadata(name, { timeoutMs = 20_000, intervalMs = 300 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const metadata = await this.metadata(name);
      if ("sessionId" in metadata) return metadata;
      if (Date.now() > deadline) {
        throw new ApiError("timeout", "The upload was not tagged in time (is the storage trigger running?)");
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

function storageError(what, error) {
  // error.code is the SDK's, e.g. "storage/unauthorized", "storage/object-not-found".
  return new ApiError(error.code || "storage", `${what}: ${error.message}`);
}

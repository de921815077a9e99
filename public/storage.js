// The Firebase Storage SDK (firebase/storage) as study.upload takes it: {storage, ref,
// uploadBytes}. study.upload asks create_upload_ticket for a ticket, uploads with it in the
// object's custom metadata, and learns from get_visitor that the storage trigger recorded the
// file (storage.rules let no browser read an object's metadata).
// The same code runs in production and in dev, where connectStorageEmulator points the SDK at
// the dev server (config.storageEmulatorHost), which serves the Firebase Storage API on top of
// the stack's Storage emulator (devtools/firebase_storage.py). A signed-in user's ID token goes
// with each request (the SDK adds it).

import { connectStorageEmulator, getStorage, ref, uploadBytes } from "firebase/storage";

// app: the Firebase app (the one Auth uses, so the SDK sends the user's token).
export function storageSdk(app, { bucket, storageEmulatorHost }) {
  const storage = getStorage(app, bucket ? `gs://${bucket}` : undefined);
  if (storageEmulatorHost) {
    const [host, port] = storageEmulatorHost.split(":");
    connectStorageEmulator(storage, host, Number(port || 80));
  }
  return {
    storage,
    ref,
    // The SDK's errors ("storage/unauthorized", …) as a sentence for the page.
    async uploadBytes(reference, data, metadata) {
      try {
        return await uploadBytes(reference, data, metadata);
      } catch (error) {
        throw Object.assign(new Error(`The upload failed: ${error.message}`), { code: error.code || "storage" });
      }
    },
  };
}

// Where the page finds the functions and Firebase, read when the page loads (not at build
// time), so one bundle serves every environment:
//   config.json: functionsUrl, and in dev where the emulators are. The committed file has
//     the production values (the functions behind Firebase Hosting's /api rewrites);
//     `make dev` answers /config.json with the local stack's values instead.
//   /__/firebase/init.json: the Firebase web app's config (apiKey, projectId, ...), which
//     Firebase Hosting serves for the project it deploys to; `make dev` serves a demo one.

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

export async function loadConfig() {
  const [settings, firebase] = await Promise.all([getJson("config.json"), getJson("/__/firebase/init.json")]);
  return { bucket: firebase.storageBucket || "", ...settings, firebase };
}

// Where the page finds the functions and Firebase, read when the page loads (not at build
// time), so one bundle serves every environment:
//   config.json: functionsUrl (or functionsRegion), and in dev where the emulators are. The
//     committed file has the production values (functionsRegion: the functions' own URLs);
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
  const config = { bucket: firebase.storageBucket || "", ...settings, firebase };
  // functionsRegion (the committed production value): call the functions at their own URLs,
  // https://REGION-PROJECT.cloudfunctions.net/NAME, not through Hosting's /api rewrites. A request
  // through Hosting reaches the function from Hosting's CDN, and the guest-creation limit would count
  // the CDN's address instead of the visitor's (README, Guest-creation limit). CORS allows the
  // Hosting origins (make deploy's ALLOWED_ORIGINS).
  if (!config.functionsUrl && config.functionsRegion) {
    config.functionsUrl = `https://${config.functionsRegion}-${firebase.projectId}.cloudfunctions.net`;
  }
  return config;
}

// Firebase App Check for the page (README, Abuse limits > App Check): the functions, with
// APP_CHECK=monitor or enforce, read a token of this web app in the X-Firebase-AppCheck header.
//
//   const getAppCheckToken = startAppCheck(config);   // config from loadConfig() (config.js)
//   const api = new Client({ functionsUrl, getIdToken, getAppCheckToken });
//
// config.appCheck (in config.json; `make dev` serves it from APP_CHECK_SITE_KEY and
// APP_CHECK_DEBUG_TOKEN) turns it on:
//   siteKey: the reCAPTCHA v3 site key registered for this web app in the Firebase console
//     (App Check > Apps); the SDK exchanges reCAPTCHA v3 attestations for App Check tokens.
//   debugToken (dev and CI only): a debug token registered in the console (App Check > Apps >
//     Manage debug tokens), or true to have the SDK make one and print it in the console.
//     It is set as self.FIREBASE_APPCHECK_DEBUG_TOKEN before App Check starts, which makes the
//     SDK use its debug provider instead of reCAPTCHA
//     (https://firebase.google.com/docs/app-check/web/debug-provider). Never in production.
// Without config.appCheck it returns null and the page sends no header (APP_CHECK=off).

import { getApp, getApps, initializeApp } from "firebase/app";
import { getToken, initializeAppCheck, ReCaptchaV3Provider } from "firebase/app-check";

export function startAppCheck({ firebase, appCheck } = {}) {
  if (!appCheck || !appCheck.siteKey) return null;
  if (appCheck.debugToken) self.FIREBASE_APPCHECK_DEBUG_TOKEN = appCheck.debugToken;
  // The page's one Firebase app: auth.js's initializeApp(firebase) with the same options
  // returns this same app, whichever of the two starts first.
  const app = getApps().length ? getApp() : initializeApp(firebase);
  const instance = initializeAppCheck(app, {
    provider: new ReCaptchaV3Provider(appCheck.siteKey),
    isTokenAutoRefreshEnabled: true, // the SDK refreshes the token before it expires
  });
  // The header's value for each call: the cached token unless it has expired (forceRefresh
  // false). If none can be had, the call goes without it and the functions decide (401 with
  // enforce, which names the header).
  return async () => {
    try {
      return (await getToken(instance, false)).token;
    } catch (error) {
      console.warn(`App Check: no token (${error.message}); the call is sent without X-Firebase-AppCheck`);
      return null;
    }
  };
}

// What both pages (app.js, research.js) do with their elements: find one by id, show an
// error in #error as a sentence that says what to do, and run a user action.

export const $ = (id) => document.getElementById(id);

// What a person can do about an error, by its code (the functions' codes, "network" when no
// answer came). Other codes show the server's message, which is written for a person. The code
// stays in #error's data-code, for tests and for a developer's inspector, never in the text.
const WHAT_TO_DO = {
  network: "The server could not be reached. Check your internet connection, then try again.",
  unavailable: "The server is busy right now. Wait a minute, then try again.",
  internal: "Something went wrong on our side. Wait a minute, then try again; if it keeps happening, tell the researcher.",
  http_error: "Something went wrong on our side. Wait a minute, then try again; if it keeps happening, tell the researcher.",
  resource_exhausted: "Too many requests from this browser. Wait a few minutes, then try again.",
  timeout: "This is taking too long. Reload the page to see what was saved, then try again.",
  guest_claimed: "Your answers were moved to an account: sign in to see them.",
  study_closed: "This study is closed: it is not taking any more participants.",
  study_full: "This study is full: it has all the participants it needs.",
  already_participated: "You have already taken part in this study, and it can be taken only once.",
};

export function errorSentence(error) {
  const code = error && error.code;
  if (code && WHAT_TO_DO[code]) return WHAT_TO_DO[code];
  const message = (error && error.message) || String(error);
  return /[.!?]$/.test(message) ? message : `${message}.`;
}

export function showError(error) {
  console.error(error); // the details (a URL, the server's message) for a developer's console
  $("error").textContent = errorSentence(error);
  $("error").dataset.code = (error && error.code) || "";
  $("error").hidden = false;
}

// Run one user action: clear the last error, disable its controls while it runs, show any
// failure, then render() the page (each page's own).
export function action(handler, render) {
  return async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const controls = target instanceof HTMLFormElement ? [...target.elements] : [target];
    $("error").hidden = true;
    controls.forEach((control) => { control.disabled = true; });
    try {
      await handler(event);
    } catch (error) {
      showError(error);
    } finally {
      controls.forEach((control) => { control.disabled = false; });
      render();
    }
  };
}

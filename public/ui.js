// What both pages (app.js, research.js) do with their elements: find one by id, show an
// error in #error, and run a user action.
import { ApiError } from "./client.js";

export const $ = (id) => document.getElementById(id);

export function showError(error) {
  const code = error instanceof ApiError ? ` (${error.code})` : "";
  $("error").textContent = `${error.message}${code}`;
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

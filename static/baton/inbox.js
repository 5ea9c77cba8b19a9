// The task list refreshes itself every 15 s (its hx-trigger), but not while the user works
// inside it: a refresh would take away the focus and what they were about to click. (A file,
// not an htmx trigger filter: filters are evaluated with Function(), which the CSP forbids.)
document.addEventListener("htmx:beforeRequest", (event) => {
  const list = event.detail.elt;
  const focused = document.activeElement;
  if (list && list.id === "task-list" && focused && list.contains(focused)) {
    event.preventDefault();
  }
});

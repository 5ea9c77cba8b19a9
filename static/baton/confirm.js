// Asks before a destructive action: a form or button with data-confirm="question" goes ahead
// only when the user agrees. (A file, not an inline handler: pages allow no inline script.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);

// The admin's "Sign in a ChatGPT account" page: ask the server for a step at the issuer's interval.
"use strict";

const status = document.getElementById("codex-status");

async function step() {
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  try {
    const response = await fetch(status.dataset.pollUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf },
      credentials: "same-origin",
    });
    return await response.json();
  } catch {
    return { state: "pending" }; // a network hiccup: try again at the next interval
  }
}

async function poll() {
  const answer = await step();
  if (answer.state === "done") {
    window.location.assign(answer.next);
  } else if (answer.state === "pending") {
    setTimeout(poll, Number(status.dataset.interval) * 1000);
  } else {
    status.textContent = answer.message;
    status.classList.add("errornote");
  }
}

if (status) {
  setTimeout(poll, Number(status.dataset.interval) * 1000);
}

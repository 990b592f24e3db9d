// tlspcap serve: the pages' only script. The pages work without it (plain form posts, a
// refreshing job page); with it, uploads show their progress and job pages follow the analysis
// through server-sent events. Text from the server is only ever set with textContent.
"use strict";

function sizeText(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " GB";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " kB";
  return n + " bytes";
}

function csrfToken(form) {
  const field = form.querySelector("input[name=csrf_token]");
  return field ? field.value : "";
}

function setupUpload(form) {
  const drop = document.getElementById("drop");
  const input = document.getElementById("capture");
  const chosen = document.getElementById("chosen");
  const bar = document.getElementById("upload-bar");
  const text = document.getElementById("upload-text");
  const button = document.getElementById("submit");
  const max = Number(form.dataset.max);

  function listFiles() {
    chosen.replaceChildren();
    for (const f of input.files) {
      const li = document.createElement("li");
      li.textContent = f.name + " (" + sizeText(f.size) + ")";
      chosen.appendChild(li);
    }
  }
  input.addEventListener("change", listFiles);
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      listFiles();
    }
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    let total = 0;
    for (const f of form.querySelectorAll("input[type=file]")) {
      for (const file of f.files) total += file.size;
    }
    if (total > max) {
      text.textContent = "Too large: the limit is " + form.dataset.maxText + ".";
      return;
    }
    const data = new FormData(form);
    data.delete("csrf_token");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken(form));
    xhr.responseType = "json";
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    text.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable) return;
      bar.max = ev.total;
      bar.value = ev.loaded;
      text.textContent = "Uploaded " + sizeText(ev.loaded) + " of " + sizeText(ev.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status === 202 && body.page_url) {
        bar.value = bar.max;
        text.textContent = "Uploaded; analysis queued.";
        window.location.assign(body.page_url);
        return;
      }
      button.disabled = false;
      text.textContent = "Refused (" + xhr.status + "): " + (body.error || "unknown error");
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      text.textContent = "The upload failed (connection lost or refused).";
    });
    xhr.send(data);
  });
}

const WORDS = {
  upload_queued: "waiting to upload", uploading: "uploading", queued: "queued",
  running: "analysing", done: "done", failed: "failed", interrupted: "interrupted",
};

function setupJob(section) {
  const status = document.getElementById("status-text");
  const upBar = document.getElementById("upload-bar");
  const upText = document.getElementById("upload-text");
  const bar = document.getElementById("analysis-bar");
  const text = document.getElementById("analysis-text");
  const events = new EventSource(section.dataset.events);
  events.addEventListener("status", (e) => {
    const job = JSON.parse(e.data);
    const p = job.progress || {};
    let words = WORDS[job.status] || job.status;
    if (job.queue_position) words += " (#" + job.queue_position + " in line)";
    status.textContent = words;
    section.dataset.status = job.status;
    if (upBar && p.upload_bytes !== undefined) {
      upBar.max = p.upload_total || p.upload_bytes || 1;
      upBar.value = p.upload_bytes;
      upText.textContent = sizeText(p.upload_bytes) + " received";
    }
    if (bar && p.bytes_read !== undefined && p.bytes_read !== null) {
      bar.max = Math.max(p.bytes_total, 1);
      bar.value = p.bytes_read;
      text.textContent = "Read " + (p.packets_read || 0).toLocaleString("en") + " packets, " +
        sizeText(p.bytes_read) + " of " + sizeText(p.bytes_total);
    }
    if (["done", "failed", "interrupted"].includes(job.status)) {
      events.close();
      window.location.reload();
    }
  });
  events.addEventListener("gone", () => { events.close(); window.location.assign("/"); });
}

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("js");
  const form = document.getElementById("upload");
  if (form) setupUpload(form);
  const section = document.getElementById("job");
  if (section && section.dataset.events) setupJob(section);
});

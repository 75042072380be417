"use strict";
// The reading page: fetch the current image, show it (zoom, pan, window/level), take the answer, send it, repeat.
// The server decides which image is current; this page only shows it. Everything is in this file: no network.
(function () {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  const off = document.createElement("canvas"), offCtx = off.getContext("2d");
  const st = { item: null, data: null, win: [0, 1], win0: [0, 1], invert: false, zoom: 1, panX: 0, panY: 0,
               answer: null, confidence: null, mark: null, t0: 0, busy: false, submittedAt: null };
  window.readerLatencies = [];  // ms from submitting an answer to the next image drawn (the benchmark reads it)

  function setState(s) { body.dataset.state = s; }
  function show(id, on) { $(id).hidden = !on; }

  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
    if (!resp.ok) {
      let msg = resp.status + "";
      try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return resp;
  }

  async function loadItem(next) {
    setState("loading");
    const item = next || await (await api("/api/item")).json();
    st.item = item;
    $("progress").textContent = item.done ? "" : `Image ${item.position + 1} of ${item.total}`;
    if (item.score) $("score").textContent = `Score ${item.score.correct}/${item.score.answered}`;
    if (item.done) { finish(item); return; }
    const im = item.image;
    let buf = ahead && ahead.id === im.id ? await ahead.bytes : null;
    if (!buf) buf = await pixelsOf(im.id);
    st.data = im.channels === 1 ? new Uint16Array(buf) : new Uint8Array(buf);
    st.win = im.window.slice(); st.win0 = im.window.slice(); st.invert = im.invert;
    off.width = im.width; off.height = im.height;
    resetView();
    st.answer = null; st.confidence = null; st.mark = null;
    updateButtons();
    show("ask", true); show("feedback", false);
    paintImage();
    draw();
    st.t0 = performance.now();
    if (st.submittedAt !== null) { window.readerLatencies.push(st.t0 - st.submittedAt); st.submittedAt = null; }
    body.dataset.position = String(item.position);
    body.dataset.image = im.id;
    setState("reading");
    // a failed fetch ahead is fetched again when the image comes up
    ahead = item.following ? { id: item.following, bytes: pixelsOf(item.following).catch(() => null) } : null;
  }

  let ahead = null;  // the next image's pixels, fetched while this one is read
  async function pixelsOf(id) { return (await api(`/api/pixels/${id}`)).arrayBuffer(); }

  function finish(item) {
    show("ask", false); show("feedback", false); show("done", true);
    if (item.score) $("done-text").textContent += ` Your score: ${item.score.correct} of ${item.score.answered}.`;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    $("status").textContent = "";
    setState("done");
  }

  // --- drawing ----------------------------------------------------------------------------------------------
  function paintImage() {  // pixels under the current window into the offscreen canvas, at image size
    const im = st.item.image, n = im.width * im.height;
    const out = offCtx.createImageData(im.width, im.height), px = out.data;
    if (im.channels === 1) {
      const lo = st.win[0] * 65535, width = Math.max((st.win[1] - st.win[0]) * 65535, 1);
      const lut = new Uint8ClampedArray(65536);
      for (let v = 0; v < 65536; v++) {
        let g = (v - lo) / width * 255;
        lut[v] = st.invert ? 255 - g : g;
      }
      for (let i = 0, j = 0; i < n; i++, j += 4) {
        const g = lut[st.data[i]];
        px[j] = g; px[j + 1] = g; px[j + 2] = g; px[j + 3] = 255;
      }
    } else {
      for (let i = 0, j = 0, k = 0; i < n; i++, j += 4, k += 3) {
        px[j] = st.data[k]; px[j + 1] = st.data[k + 1]; px[j + 2] = st.data[k + 2]; px[j + 3] = 255;
      }
    }
    offCtx.putImageData(out, 0, 0);
  }

  function updateStatus() {
    const w = st.win;
    $("status").textContent = st.item.image.channels === 1 ?
      `W ${(w[1] - w[0]).toFixed(3)}  L ${((w[0] + w[1]) / 2).toFixed(3)}  zoom ${st.zoom.toFixed(1)}×` :
      `zoom ${st.zoom.toFixed(1)}×`;
  }

  function fit() {
    const im = st.item.image;
    return Math.min(canvas.width / im.width, canvas.height / im.height);
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
    if (!st.item || !st.item.image) return;
    const s = fit() * st.zoom, im = st.item.image;
    ctx.imageSmoothingEnabled = s < 2;
    ctx.setTransform(s, 0, 0, s, w / 2 + st.panX - im.width * s / 2, h / 2 + st.panY - im.height * s / 2);
    ctx.drawImage(off, 0, 0);
    updateStatus();
    if (st.mark) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      const p = toCanvas(st.mark[0] * im.width, st.mark[1] * im.height);
      ctx.strokeStyle = "#ffd43b"; ctx.lineWidth = 2 * dpr;
      ctx.beginPath(); ctx.arc(p[0], p[1], 14 * dpr, 0, 2 * Math.PI); ctx.stroke();
    }
  }

  function toCanvas(x, y) {
    const s = fit() * st.zoom, im = st.item.image;
    return [canvas.width / 2 + st.panX - im.width * s / 2 + x * s, canvas.height / 2 + st.panY - im.height * s / 2 + y * s];
  }

  function toImage(cx, cy) {  // canvas pixel -> image fraction [0, 1], or null outside the image
    const s = fit() * st.zoom, im = st.item.image;
    const x = (cx - (canvas.width / 2 + st.panX - im.width * s / 2)) / s;
    const y = (cy - (canvas.height / 2 + st.panY - im.height * s / 2)) / s;
    if (x < 0 || y < 0 || x > im.width || y > im.height) return null;
    return [x / im.width, y / im.height];
  }

  function resetView() { st.zoom = 1; st.panX = 0; st.panY = 0; st.win = st.win0.slice(); }
  function zoomBy(f, cx, cy) {
    const z = Math.min(16, Math.max(1, st.zoom * f)), k = z / st.zoom;
    if (cx !== undefined) {  // keep the point under the cursor still
      st.panX = (st.panX - (cx - canvas.width / 2)) * k + (cx - canvas.width / 2);
      st.panY = (st.panY - (cy - canvas.height / 2)) * k + (cy - canvas.height / 2);
    } else { st.panX *= k; st.panY *= k; }
    st.zoom = z;
  }
  function windowBy(dWidth, dLevel) {
    if (!st.item || st.item.image.channels !== 1) return;
    const width = Math.min(2, Math.max(0.002, (st.win[1] - st.win[0]) * (1 + dWidth)));
    const level = (st.win[0] + st.win[1]) / 2 + dLevel;
    st.win = [level - width / 2, level + width / 2];
    paintImage();
  }

  // --- answering --------------------------------------------------------------------------------------------
  function updateButtons() {
    for (const b of document.querySelectorAll("[data-answer]")) b.classList.toggle("on", b.dataset.answer === st.answer);
    for (const b of document.querySelectorAll("[data-confidence]")) {
      b.classList.toggle("on", Number(b.dataset.confidence) === st.confidence);
    }
    $("submit").disabled = !(st.answer && st.confidence);
  }

  async function submit() {
    if (st.busy || body.dataset.state !== "reading") return;
    if (!st.answer || !st.confidence) { $("error").textContent = "Choose an answer and a confidence first."; return; }
    st.busy = true; $("error").textContent = "";
    const payload = { image: st.item.image.id, answer: st.answer, confidence: st.confidence,
                      x: st.mark ? st.mark[0] : null, y: st.mark ? st.mark[1] : null,
                      client_ms: Math.round(performance.now() - st.t0) };
    st.submittedAt = performance.now();
    setState("sending");
    try {
      const resp = await api("/api/answer", { method: "POST", body: JSON.stringify(payload),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": cfg.csrf } });
      const out = await resp.json();
      if (out.feedback) { showFeedback(out.feedback); st.submittedAt = null; } else { await loadItem(out.next); }
    } catch (e) {
      $("error").textContent = "Not saved: " + e.message + ". Try again.";
      setState("reading");
    } finally { st.busy = false; }
  }

  function showFeedback(fb) {
    const name = { real: "real", synthetic: "synthetic", tampered: "tampered" };
    $("fb-verdict").textContent = fb.correct ? "Correct" : "Not quite";
    $("fb-verdict").className = fb.correct ? "good" : "bad";
    $("fb-truth").textContent = `This image is ${name[fb.truth]}.` + (fb.region ? " The changed area is outlined." : "");
    const d = fb.detector;
    $("fb-detector").textContent = d.level === "unscored" ?
      "Not assessed: the detector's pixel analyzers do not cover this kind of image (unscored)." :
      d.risk === null ? "The detector could not score this image." :
      `Detector: risk ${d.risk.toFixed(2)} (${d.level}) — ${d.correct ? "right" : "wrong"} on this one.`;
    const ul = $("fb-reasons"); ul.textContent = "";
    for (const r of (d.reasons.length ? d.reasons : ["no evidence found"])) {
      const li = document.createElement("li"); li.textContent = r; ul.appendChild(li);
    }
    const img = $("fb-overlay");
    if (fb.overlay) { img.src = fb.overlay; img.hidden = false; } else { img.hidden = true; img.removeAttribute("src"); }
    $("score").textContent = `Score ${fb.score.correct}/${fb.score.answered}`;
    if (fb.region) {
      const im = st.item.image, a = toCanvas(fb.region[0] * im.width, fb.region[1] * im.height);
      const b = toCanvas(fb.region[2] * im.width, fb.region[3] * im.height);
      ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.strokeStyle = "#51cf66"; ctx.lineWidth = 2;
      ctx.strokeRect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
    }
    show("ask", false); show("feedback", true);
    setState("feedback");
    $("next").focus();
  }

  // --- input ------------------------------------------------------------------------------------------------
  for (const b of document.querySelectorAll("[data-answer]")) {
    b.addEventListener("click", () => { st.answer = b.dataset.answer; updateButtons(); });
  }
  for (const b of document.querySelectorAll("[data-confidence]")) {
    b.addEventListener("click", () => { st.confidence = Number(b.dataset.confidence); updateButtons(); });
  }
  $("submit").addEventListener("click", submit);
  $("next").addEventListener("click", () => loadItem(null).catch(fail));
  $("help-btn").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });

  const keyAnswer = {};
  for (const c of cfg.choices) keyAnswer[c.key] = c.value;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.tagName === "INPUT") return;
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key, state = body.dataset.state;
    if (k === "q") { $("stop-form").submit(); return; }
    if (k === "?") { $("help").hidden = !$("help").hidden; return; }
    if (state === "feedback" && (k === "Enter" || k === " " || k === "n")) {
      e.preventDefault(); loadItem(null).catch(fail); return;
    }
    if (state !== "reading") return;
    let handled = true;
    if (keyAnswer[k]) { st.answer = keyAnswer[k]; updateButtons(); }
    else if (k >= "1" && k <= "5") { st.confidence = Number(k); updateButtons(); }
    else if (k === "Enter") submit();
    else if (k === "Escape") { st.mark = null; }
    else if (k === "+" || k === "=") zoomBy(1.25);
    else if (k === "-") zoomBy(0.8);
    else if (k === "0") { resetView(); paintImage(); }
    else if (k === "ArrowLeft") st.panX += 40;
    else if (k === "ArrowRight") st.panX -= 40;
    else if (k === "ArrowUp") st.panY += 40;
    else if (k === "ArrowDown") st.panY -= 40;
    else if (k === "[") windowBy(-0.1, 0);
    else if (k === "]") windowBy(0.1, 0);
    else if (k === ";") windowBy(0, -0.01);
    else if (k === "'") windowBy(0, 0.01);
    else handled = false;
    if (handled) { e.preventDefault(); draw(); }
  });

  let drag = null;
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, y: e.clientY, moved: 0, wl: e.button === 2 || e.shiftKey };
  });
  window.addEventListener("mousemove", (e) => {
    if (!drag || !st.item || !st.item.image) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y, dpr = window.devicePixelRatio || 1;
    drag.moved += Math.abs(dx) + Math.abs(dy); drag.x = e.clientX; drag.y = e.clientY;
    if (drag.wl) windowBy(dx / 200, -dy / 500); else { st.panX += dx * dpr; st.panY += dy * dpr; }
    draw();
  });
  window.addEventListener("mouseup", (e) => {
    if (drag && drag.moved < 4 && !drag.wl && body.dataset.state === "reading") {
      const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
      const p = toImage((e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr);
      if (p) { st.mark = p; draw(); }
    }
    drag = null;
  });
  canvas.addEventListener("wheel", (e) => {
    if (!st.item || !st.item.image) return;
    e.preventDefault();
    const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, (e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr);
    draw();
  }, { passive: false });
  window.addEventListener("resize", draw);

  function fail(e) { $("status").textContent = "Could not load: " + e.message; setState("error"); }
  loadItem(null).catch(fail);
})();

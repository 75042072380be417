// The per-image viewer (views.html): zoom and pan (wheel, drag, buttons, keys), window/level on the stored values,
// layers (ELA, noise, heatmaps on the score's 0-1 scale, copy-move) and a readout of coordinates and values.
// A viewer starts when its details open. Its state is mirrored in data-zoom, data-x, data-y, data-layer, data-wl.
(function () {
  "use strict";
  // cv2.COLORMAP_TURBO, the heatmap colours everywhere in the report, as 256 RGB hex triplets
  var TURBO_HEX = "30123b32154333184a341b51351e5836215f37246638276d392a733a2d793b2f803c32863d358b3e38913f3b973f3e9c4040a24143a74146ac4249b1424bb5434eba4451bf4454c34456c74559cb455ccf455ed34661d64664da4666dd4669e0466be3476ee64771e94773eb4776ee4778f0477bf2467df44680f64682f84685fa4687fb458afc458cfd448ffe4391fe4294ff4196ff4099ff3e9bfe3d9efe3ba0fd3aa3fc38a5fb37a8fa35abf833adf731aff52fb2f42eb4f22cb7f02ab9ee28bceb27bee925c0e723c3e422c5e220c7df1fc9dd1ecbda1ccdd81bd0d51ad2d21ad4d019d5cd18d7ca18d9c818dbc518ddc218dec018e0bd19e2bb19e3b91ae4b61ce6b41de7b21fe9af20eaac22ebaa25eca727eea42aefa12cf09e2ff19b32f29835f39438f4913cf58e3ff68a43f78746f8844af8804ef97d52fa7a55fa7659fb735dfc6f61fc6c65fd6969fd666dfe6271fe5f75fe5c79fe597dff5680ff5384ff5188ff4e8bff4b8fff4992ff4796fe4499fe429cfe409ffd3fa1fd3da4fc3ca7fc3aa9fb39acfb38affa37b1f936b4f836b7f735b9f635bcf534bef434c1f334c3f134c6f034c8ef34cbed34cdec34d0ea34d2e935d4e735d7e535d9e436dbe236dde037dfdf37e1dd37e3db38e5d938e7d739e9d539ebd339ecd13aeecf3aefcd3af1cb3af2c93af4c73af5c53af6c33af7c13af8be39f9bc39faba39fbb838fbb637fcb336fcb136fdae35fdac34fea933fea732fea431fea130fe9e2ffe9b2dfe992cfe962bfe932afe9029fd8d27fd8a26fc8725fc8423fb8122fb7e21fa7b1ff9781ef9751df8721cf76f1af66c19f56918f46617f36315f26014f15d13f05b12ef5811ed5510ec530feb500eea4e0de84b0ce7490ce5470be4450ae2430ae14109df3f08dd3d08dc3b07da3907d83706d63506d43305d23105d02f05ce2d04cc2b04ca2a04c82803c52603c32503c12302be2102bc2002b91e02b71d02b41b01b21a01af1801ac1701a91601a71401a41301a112019e10019b0f01980e01950d01920b018e0a018b09028808028507028106027e05027a0403";
  var TURBO = [];
  for (var t = 0; t < 256; t++) TURBO.push([0, 2, 4].map(function (k) { return parseInt(TURBO_HEX.substr(6 * t + k, 2), 16); }));

  function turbo(v) { return TURBO[Math.max(0, Math.min(255, Math.round(v * 255)))]; }
  function fmt(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3); }

  function Viewer(root) {
    this.root = root;
    this.cfg = JSON.parse(root.querySelector("script.vw-config").textContent);
    this.size = this.cfg.base.size;
    this.stages = Array.prototype.slice.call(root.querySelectorAll(".vw-stage"));
    this.planes = Array.prototype.slice.call(root.querySelectorAll(".vw-plane"));
    this.z = 1; this.x = 0; this.y = 0; this.layer = "";
    this.values = null;
    this.bind();
    this.fit();
    this.loadBase();
    this.showLayer("");
    root.setAttribute("data-started", "1");
  }

  Viewer.prototype.q = function (sel) { return this.root.querySelector(sel); };

  Viewer.prototype.apply = function () {
    var css = "translate(" + this.x + "px," + this.y + "px) scale(" + this.z + ")";
    this.planes.forEach(function (p) { p.style.transform = css; });
    this.root.classList.toggle("vw-pixels", this.z >= 2);
    var zoom = this.q(".vw-zoom");
    if (zoom) zoom.textContent = Math.round(this.z * 100) + " %";
    this.root.setAttribute("data-zoom", this.z.toFixed(4));
    this.root.setAttribute("data-x", this.x.toFixed(1));
    this.root.setAttribute("data-y", this.y.toFixed(1));
  };

  Viewer.prototype.box = function () {
    var s = this.stages[0];
    return { w: s.clientWidth || 1, h: s.clientHeight || 1 };
  };

  Viewer.prototype.fit = function () {
    var b = this.box(), w = this.size[0], h = this.size[1];
    this.z = Math.min(b.w / w, b.h / h);
    this.x = (b.w - w * this.z) / 2; this.y = (b.h - h * this.z) / 2;
    this.apply();
  };

  // zoom by factor k about stage point (px, py); default the stage centre
  Viewer.prototype.zoomBy = function (k, px, py) {
    var b = this.box();
    if (px === undefined) { px = b.w / 2; py = b.h / 2; }
    var z = Math.max(0.05, Math.min(64, this.z * k));
    this.x = px - (px - this.x) * z / this.z;
    this.y = py - (py - this.y) * z / this.z;
    this.z = z;
    this.apply();
  };

  Viewer.prototype.zoomTo = function (z) { this.zoomBy(z / this.z); };

  Viewer.prototype.pan = function (dx, dy) { this.x += dx; this.y += dy; this.apply(); };

  Viewer.prototype.bind = function () {
    var self = this;
    this.root.querySelectorAll("button[data-act]").forEach(function (b) {
      b.addEventListener("click", function () {
        var act = b.getAttribute("data-act");
        if (act === "in") self.zoomBy(1.5);
        else if (act === "out") self.zoomBy(1 / 1.5);
        else if (act === "fit") self.fit();
        else if (act === "one") self.zoomTo(1);
      });
    });
    this.root.querySelectorAll("button[data-layer]").forEach(function (b) {
      b.addEventListener("click", function () { self.showLayer(b.getAttribute("data-layer")); });
    });
    this.stages.forEach(function (stage) {
      stage.addEventListener("wheel", function (e) {
        e.preventDefault();
        var r = stage.getBoundingClientRect();
        self.zoomBy(Math.pow(1.0015, -e.deltaY), e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      var drag = null;
      stage.addEventListener("pointerdown", function (e) {
        drag = { x: e.clientX, y: e.clientY };
        stage.setPointerCapture(e.pointerId);
        stage.focus();
      });
      stage.addEventListener("pointermove", function (e) {
        if (drag) { self.pan(e.clientX - drag.x, e.clientY - drag.y); drag = { x: e.clientX, y: e.clientY }; }
        var r = stage.getBoundingClientRect();
        self.readout((e.clientX - r.left - self.x) / self.z, (e.clientY - r.top - self.y) / self.z);
      });
      stage.addEventListener("pointerup", function () { drag = null; });
      stage.addEventListener("keydown", function (e) {
        var step = 40, handled = true;
        if (e.key === "+" || e.key === "=") self.zoomBy(1.5);
        else if (e.key === "-" || e.key === "_") self.zoomBy(1 / 1.5);
        else if (e.key === "0") self.fit();
        else if (e.key === "1") self.zoomTo(1);
        else if (e.key === "ArrowLeft") self.pan(step, 0);
        else if (e.key === "ArrowRight") self.pan(-step, 0);
        else if (e.key === "ArrowUp") self.pan(0, step);
        else if (e.key === "ArrowDown") self.pan(0, -step);
        else handled = false;
        if (handled) e.preventDefault();
      });
    });
    var op = this.q(".vw-opacity input");
    if (op) op.addEventListener("input", function () { self.setOpacity(parseFloat(op.value)); });
  };

  // --- layers

  Viewer.prototype.layerCfg = function (id) {
    var found = null;
    (this.cfg.layers || []).forEach(function (l) { if (l.id === id) found = l; });
    return found;
  };

  Viewer.prototype.showLayer = function (id) {
    var cfg = this.layerCfg(id);
    this.layer = id;
    this.root.querySelectorAll(".vw-plane [data-layer]").forEach(function (el) {
      el.classList.toggle("vw-off", el.getAttribute("data-layer") !== id);  // a class: svg has no `hidden`
    });
    this.root.querySelectorAll("button[data-layer]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-layer") === id ? "true" : "false");
    });
    if (cfg && cfg.mode === "heat") this.drawHeat(cfg);
    var op = this.q(".vw-opacity");
    if (op) {
      op.hidden = !cfg;
      if (cfg) { op.querySelector("input").value = cfg.opacity; this.setOpacity(cfg.opacity); }
    }
    var legend = this.q(".vw-legend");
    if (legend) { legend.hidden = !(cfg && cfg.mode === "heat"); if (!legend.hidden) this.drawLegend(); }
    var cap = this.q(".vw-caption");
    if (cap) cap.textContent = cfg ? cfg.caption : (this.cfg.caption || "");
    this.root.setAttribute("data-layer", id);
  };

  Viewer.prototype.setOpacity = function (a) {
    var el = this.root.querySelector(".vw-plane [data-layer='" + this.layer + "']");
    if (el) el.style.opacity = String(a);
  };

  Viewer.prototype.drawHeat = function (cfg) {
    var c = this.root.querySelector(".vw-plane canvas[data-layer='" + cfg.id + "']");
    if (!c || c.getAttribute("data-drawn")) return;
    var h = cfg.heat, ctx = c.getContext("2d"), img = ctx.createImageData(h.cols, h.rows);
    for (var i = 0; i < h.values.length; i++) {
      var rgb = turbo(h.values[i]);
      img.data[4 * i] = rgb[0]; img.data[4 * i + 1] = rgb[1]; img.data[4 * i + 2] = rgb[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    c.setAttribute("data-drawn", "1");
  };

  Viewer.prototype.drawLegend = function () {
    var c = this.q(".vw-legend-bar");
    if (!c || c.getAttribute("data-drawn")) return;
    var ctx = c.getContext("2d"), img = ctx.createImageData(256, 1);
    for (var i = 0; i < 256; i++) {
      img.data[4 * i] = TURBO[i][0]; img.data[4 * i + 1] = TURBO[i][1]; img.data[4 * i + 2] = TURBO[i][2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    c.setAttribute("data-drawn", "1");
  };

  // --- the base image and window/level

  Viewer.prototype.loadBase = function () {
    var self = this, src = this.q("img.vw-src"), base = this.cfg.base;
    var canvas = this.q("canvas.vw-base");
    if (!src || !canvas) return;
    var draw = function () {
      var w = base.size[0], h = base.size[1];
      var ctx = canvas.getContext("2d");
      ctx.drawImage(src, 0, 0, w, h);
      if (base.kind === "rgb") { self.root.setAttribute("data-wl", "none"); return; }
      var px = ctx.getImageData(0, 0, w, h).data, n = w * h, v = new Float32Array(n);
      for (var i = 0; i < n; i++) {
        var q = base.kind === "grey16" ? px[4 * i] * 256 + px[4 * i + 1] : px[4 * i];
        v[i] = base.offset + q * base.step;
      }
      self.values = v;
      self.image = ctx.createImageData(w, h);
      self.setupWL();
    };
    if (src.complete && src.naturalWidth) draw();
    else src.addEventListener("load", draw);
  };

  Viewer.prototype.setupWL = function () {
    var self = this, base = this.cfg.base, lo = base.range[0], hi = base.range[1];
    var span = Math.max(hi - lo, 1e-6), c = this.q(".vw-c"), w = this.q(".vw-w");
    if (!c || !w) { this.setWL(base.window[0], base.window[1]); return; }
    var step = base.kind === "grey8" ? 1 : span / 1000;
    c.min = lo - span / 2; c.max = hi + span / 2; c.step = step;
    w.min = step; w.max = 2 * span; w.step = step;
    var onInput = function () { self.setWL(parseFloat(c.value), parseFloat(w.value)); };
    c.addEventListener("input", onInput);
    w.addEventListener("input", onInput);
    this.root.querySelectorAll("button[data-wl]").forEach(function (b) {
      b.addEventListener("click", function () {
        var k = b.getAttribute("data-wl");
        if (k === "file") self.setWL(base.window[0], base.window[1]);
        else if (k === "full") self.setWL((lo + hi) / 2, span);
        else { var p = k.split(","); self.setWL(parseFloat(p[0]), parseFloat(p[1])); }
      });
    });
    this.setWL(base.window[0], base.window[1]);
  };

  // show stored values in [level - width / 2, level + width / 2] black to white (inverted for MONOCHROME1)
  Viewer.prototype.setWL = function (level, width) {
    if (!this.values || !(width > 0)) return;
    this.wl = [level, width];
    var v = this.values, d = this.image.data, lo = level - width / 2, k = 255 / width, inv = this.cfg.base.invert;
    for (var i = 0; i < v.length; i++) {
      var g = (v[i] - lo) * k;
      g = g < 0 ? 0 : g > 255 ? 255 : g;
      if (inv) g = 255 - g;
      d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = g; d[4 * i + 3] = 255;
    }
    this.q("canvas.vw-base").getContext("2d").putImageData(this.image, 0, 0);
    var c = this.q(".vw-c"), w = this.q(".vw-w"), text = this.q(".vw-wl-text"), unit = this.cfg.base.unit;
    if (c) c.value = level;
    if (w) w.value = width;
    if (text) text.textContent = "level " + fmt(level) + ", width " + fmt(width) + (unit ? " " + unit : "");
    this.root.setAttribute("data-wl", level + "," + width);
  };

  // --- what is under the pointer: native coordinates, the stored value, the active heatmap's cell value

  Viewer.prototype.readout = function (vx, vy) {
    var out = this.q(".vw-readout"), base = this.cfg.base, s = this.cfg.scale || 1;
    if (!out || !this.cfg.native) return;
    if (vx < 0 || vy < 0 || vx >= this.size[0] || vy >= this.size[1]) { out.textContent = ""; return; }
    var nx = Math.floor(vx / s), ny = Math.floor(vy / s), parts = ["x " + nx + ", y " + ny];
    if (this.values) {
      var value = this.values[Math.floor(vy) * this.size[0] + Math.floor(vx)];
      parts.push("value " + fmt(value) + (base.unit ? " " + base.unit : ""));
    }
    var cfg = this.layerCfg(this.layer);
    if (cfg && cfg.mode === "heat") {
      var b = cfg.heat.box, col = Math.floor((nx - b[0]) / b[2] * cfg.heat.cols), row = Math.floor((ny - b[1]) / b[3] * cfg.heat.rows);
      if (col >= 0 && row >= 0 && col < cfg.heat.cols && row < cfg.heat.rows) {
        parts.push(cfg.label + " " + cfg.heat.values[row * cfg.heat.cols + col].toFixed(2) + " (row " + (row + 1) + ", column " + (col + 1) + ")");
      }
    }
    out.textContent = parts.join(" · ");
  };

  function start(root) {
    if (root._viewer) return;
    root._viewer = new Viewer(root);
  }

  var viewers = Array.prototype.slice.call(document.querySelectorAll("[data-viewer]"));
  viewers.forEach(function (root) {
    var details = root.closest("details");
    if (!details || details.open) { start(root); return; }
    details.addEventListener("toggle", function () { if (details.open) start(root); });
  });
  document.body.setAttribute("data-views-ready", String(viewers.length));
})();

/* acdc_compare circuit viewer: plain JavaScript and inline SVG, no library, no network.
   Reads the JSON blob in each .acdc-viewer container (written by acdc_compare.viewer) and draws the
   circuits on the layout computed in Python: pan (drag), zoom (wheel), edge tooltips, pin a node to
   highlight its upstream and downstream closure, switch between circuits and their comparison and between
   the head level (kept edges merged per node pair) and the edge level, filter arrows by importance (a kept
   edge's place in the circuit's ranking by the evidence that kept it), and show a pinned head's attention
   patterns. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  /* the graph's height in px: at least MIN_HEIGHT, at most the window's MAX_WINDOW_SHARE; a narrow graph is not
     enlarged more than MAX_SCALE times (a 10-head-wide layout fills 1,200 px at 1.6) */
  var MIN_HEIGHT = 360, MAX_WINDOW_SHARE = 0.85, MAX_SCALE = 2.5;

  function el(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(e);
    return e;
  }
  function h(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(x) {
    if (x === null || x === undefined || typeof x !== "number" || isNaN(x)) return "n/a";
    if (!isFinite(x)) return x > 0 ? "inf" : "-inf";
    var a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
    return String(Number(x.toPrecision(3)));
  }
  function absScore(e) { return (typeof e.importance === "number" && isFinite(e.importance)) ? e.importance : -1; }

  function Viewer(root, data) {
    this.root = root;
    this.data = data;
    var names = data.circuits.map(function (c) { return c.label; });
    this.state = { left: 0, right: Math.min(1, names.length - 1), mode: names.length > 1 ? "compare" : "left",
                   threshold: -Infinity, liveOnly: true, pinned: null, level: data.level || "edges" };
    this.build();
    this.render();
  }

  Viewer.prototype.build = function () {
    var self = this, d = this.data, root = this.root;
    var bar = h("div", { "class": "av-toolbar" }, root);
    function select(label, key) {
      var lab = h("label", {}, bar, label + " ");
      var s = h("select", { "class": "av-" + key }, lab);
      d.circuits.forEach(function (c, i) { h("option", { value: String(i) }, s, c.label); });
      s.value = String(self.state[key]);
      s.addEventListener("change", function () { self.state[key] = Number(s.value); self.render(); });
      return s;
    }
    this.leftSel = select("left", "left");
    if (d.circuits.length > 1) this.rightSel = select("right", "right");
    var modes = h("span", {}, bar);
    var choices = d.circuits.length > 1 ? [["left", "left only"], ["right", "right only"], ["compare", "compare"]]
                                        : [["left", "circuit"]];
    choices.forEach(function (m) {
      var lab = h("label", {}, modes);
      var r = h("input", { type: "radio", name: "av-mode-" + d.uid, value: m[0], "class": "av-mode-" + m[0] }, lab);
      if (self.state.mode === m[0]) r.checked = true;
      r.addEventListener("change", function () { if (r.checked) { self.state.mode = m[0]; self.render(); } });
      lab.appendChild(document.createTextNode(" " + m[1] + " "));
    });
    var levels = h("span", {}, bar);
    [["heads", "heads"], ["edges", "edges"]].forEach(function (m) {
      var lab = h("label", {}, levels);
      var r = h("input", { type: "radio", name: "av-level-" + d.uid, value: m[0], "class": "av-level-" + m[0] }, lab);
      if (self.state.level === m[0]) r.checked = true;
      r.addEventListener("change", function () {
        if (r.checked) { self.state.level = m[0]; self.state.threshold = -Infinity; self.render(); }
      });
      lab.appendChild(document.createTextNode(" " + m[1] + " "));
    });
    var fl = h("label", {}, bar, "hide importance below ");
    this.slider = h("input", { type: "range", min: "0", max: "0", value: "0", step: "1", "class": "av-slider" }, fl);
    this.sliderText = h("span", { "class": "av-slider-text" }, fl);
    this.slider.addEventListener("input", function () {
      var k = Number(self.slider.value), sorted = self.sortedScores;
      self.state.threshold = k === 0 ? -Infinity : sorted[Math.min(k, sorted.length - 1)];
      self.render();
    });
    var lv = h("label", {}, bar);
    var live = h("input", { type: "checkbox", "class": "av-live" }, lv);
    live.checked = this.state.liveOnly;
    lv.appendChild(document.createTextNode(" only edges on an input-to-logits path"));
    live.addEventListener("change", function () { self.state.liveOnly = live.checked; self.render(); });
    var reset = h("button", { type: "button", "class": "av-reset" }, bar, "fit");
    reset.addEventListener("click", function () { self.fit(); });

    this.info = h("div", { "class": "av-info" }, root);
    this.svg = el("svg", { "class": "av-graph", role: "img" }, root);
    this.gRows = el("g", { "class": "av-rows" }, this.svg);
    this.gEdges = el("g", { "class": "av-edges" }, this.svg);
    this.gNodes = el("g", { "class": "av-nodes" }, this.svg);
    this.tip = h("div", { "class": "av-tip" }, root);
    this.legend = h("div", { "class": "av-legend" }, root);
    this.panel = h("div", { "class": "av-panel" }, root);
    d.layout.rows.forEach(function (r) {
      var t = el("text", { x: 4, y: r.y, "class": "av-rowlabel", "dominant-baseline": "central" }, self.gRows);
      t.textContent = r.label;
    });
    (d.layout.columns || []).forEach(function (c) {  /* a span circuit's spans */
      var t = el("text", { x: c.x, y: c.y, "class": "av-collabel", "text-anchor": "middle" }, self.gRows);
      t.textContent = c.label;
    });
    this.nodeEls = {};
    Object.keys(d.nodes).forEach(function (name) {
      var n = d.nodes[name];
      var g = el("g", { "class": "av-node" + (n.kind === "input" || n.kind === "logits" ? " av-io" : ""),
                        "data-node": name, transform: "translate(" + n.x + "," + n.y + ")" }, self.gNodes);
      el("rect", { x: -d.layout.node_w / 2, y: -d.layout.node_h / 2, width: d.layout.node_w,
                   height: d.layout.node_h, rx: n.kind === "head" ? 6 : 1, fill: n.fill }, g);
      el("text", {}, g).textContent = n.label || name;
      g.addEventListener("click", function (ev) { ev.stopPropagation(); self.pin(name); });
      g.addEventListener("mousemove", function (ev) { self.showTip(ev, self.nodeTip(name)); });
      g.addEventListener("mouseleave", function () { self.hideTip(); });
      self.nodeEls[name] = g;
    });
    this.bindPanZoom();
    this.fit();
    this.watchSize();
  };

  Viewer.prototype.nodeTip = function (name) {
    var n = this.data.nodes[name], lines = [name + (n.role ? ": " + n.role : "")];
    var self = this;
    this.activeCircuits().forEach(function (ci) {
      var c = self.data.circuits[ci], dir = c.direct[name];
      if (dir) {
        lines.push(c.label + " direct edges kept: " + Object.keys(dir).map(function (k) {
          return k + " " + fmt(dir[k]); }).join(", "));
      }
    });
    if (this.data.attention && this.data.attention.patterns[name]) lines.push("click: attention patterns");
    return lines.join("\n");
  };

  Viewer.prototype.activeCircuits = function () {
    var s = this.state;
    if (s.mode === "left") return [s.left];
    if (s.mode === "right") return [s.right];
    return s.left === s.right ? [s.left] : [s.left, s.right];
  };

  /* The arrows on show: [{key, name, up, down, kind, importance, member}] before the importance filter; at
     head level one per node pair (the kept edges between two nodes merged), at edge level one per edge. */
  Viewer.prototype.currentEdges = function () {
    var s = this.state, d = this.data, self = this, heads = s.level === "heads";
    var active = this.activeCircuits(), byKey = {}, out = [];
    active.forEach(function (ci, side) {
      var c = d.circuits[ci];
      (heads ? c.arrows : c.edges).forEach(function (e) {
        if (!heads && self.state.liveOnly && !e.live) return;
        var name = heads ? e.up + "->" + e.down : e.name;
        var key = name + "|" + e.down, got = byKey[key];
        if (!got) {
          got = byKey[key] = { key: key, name: name, up: e.up, down: e.down, kind: e.kind,
                               importance: e.importance, sides: {}, scores: {}, details: {} };
          out.push(got);
        } else if (absScore(e) > absScore(got)) {
          got.importance = e.importance;
        }
        got.sides[side] = true;
        got.scores[c.label] = heads ? e.importance : e.score;
        got.details[c.label] = heads
          ? e.n_edges + " edges, importance " + e.by_kind.map(function (kw) { return kw[0] + " " + fmt(kw[1]); }).join(", ")
          : e.score_kind + " score " + fmt(e.score) + ", importance " + fmt(e.importance);
      });
    });
    out.forEach(function (e) {
      if (s.mode !== "compare" || active.length === 1) e.member = "single";
      else e.member = e.sides[0] && e.sides[1] ? "shared" : (e.sides[0] ? "left" : "right");
    });
    return out;
  };

  Viewer.prototype.render = function () {
    var self = this, d = this.data, s = this.state;
    if (this.rightSel) this.rightSel.disabled = s.mode === "left";
    this.leftSel.disabled = s.mode === "right";
    var all = this.currentEdges();
    this.sortedScores = all.map(absScore).sort(function (a, b) { return a - b; });
    var shown = all.filter(function (e) { return absScore(e) >= s.threshold; });
    var hidden = all.length - shown.length;
    this.slider.max = String(Math.max(0, all.length - 1));
    this.slider.value = String(hidden);
    this.sliderText.textContent = s.threshold === -Infinity ? " (all shown)"
      : " " + fmt(s.threshold) + " (" + hidden + " hidden)";
    this.shown = shown;
    while (this.gEdges.firstChild) this.gEdges.removeChild(this.gEdges.firstChild);
    var visibleNodes = {};
    visibleNodes[d.input] = visibleNodes[d.logits] = true;
    var maxAbs = 0;
    shown.forEach(function (e) { if (absScore(e) > maxAbs) maxAbs = absScore(e); });
    shown.forEach(function (e) {
      visibleNodes[e.up] = visibleNodes[e.down] = true;
      var a = d.nodes[e.up], b = d.nodes[e.down], style = d.edge_styles[e.kind] || ["#444", ""];
      var off = { q: -12, k: 0, v: 12 }[e.kind] || 0;
      var x1 = a.x, y1 = a.y - d.layout.node_h / 2, x2 = b.x + off, y2 = b.y + d.layout.node_h / 2;
      if (Math.abs(a.y - b.y) < 1) { y1 = a.y - d.layout.node_h / 2; y2 = b.y - d.layout.node_h / 2; }
      var dy = Math.max(24, Math.abs(y1 - y2) / 2);
      var path = "M" + x1 + "," + y1 + " C" + x1 + "," + (y1 - dy) + " " + x2 + "," + (y2 + (y2 < y1 - 1 ? dy : -dy))
        + " " + x2 + "," + y2;
      var colour = e.member === "single" ? style[0] : d.comparison_colors[e.member];
      var width = maxAbs > 0 && absScore(e) >= 0 ? 0.8 + 3.2 * absScore(e) / maxAbs : 1.4;
      var g = el("g", { "class": "av-edge av-" + e.member, "data-name": e.name, "data-key": e.key,
                        "data-kind": e.kind, "data-up": e.up, "data-down": e.down }, self.gEdges);
      el("path", { d: path, "class": "av-line", stroke: colour, "stroke-width": width.toFixed(2),
                   "stroke-dasharray": style[1] }, g);
      el("path", { d: path, "class": "av-hit" }, g);
      g.addEventListener("mousemove", function (ev) { self.showTip(ev, self.edgeTip(e)); });
      g.addEventListener("mouseleave", function () { self.hideTip(); });
      e.el = g;
    });
    if (s.pinned) visibleNodes[s.pinned] = true;
    Object.keys(this.nodeEls).forEach(function (name) {
      self.nodeEls[name].style.display = visibleNodes[name] ? "" : "none";
      if (d.nodes[name].kind !== "input" && d.nodes[name].kind !== "logits") {
        var fill = d.nodes[name].fill;
        if (s.mode === "compare" && self.activeCircuits().length === 2) {
          var inL = d.circuits[s.left].nodes.indexOf(name) >= 0, inR = d.circuits[s.right].nodes.indexOf(name) >= 0;
          fill = d.comparison_fills[inL && inR ? "shared" : (inL ? "left" : "right")] || fill;
        }
        self.nodeEls[name].firstChild.setAttribute("fill", fill);
      }
    });
    this.renderLegend();
    this.highlight();
  };

  Viewer.prototype.edgeTip = function (e) {
    var lines = [e.name, "kind: " + e.kind + (e.member !== "single" ? "   in: " + this.memberLabel(e.member) : "")];
    Object.keys(e.details).forEach(function (label) { lines.push("score (" + label + "): " + e.details[label]); });
    return lines.join("\n");
  };

  Viewer.prototype.memberLabel = function (m) {
    var d = this.data, s = this.state;
    if (m === "shared") return "both";
    return "only " + d.circuits[m === "left" ? s.left : s.right].label;
  };

  Viewer.prototype.renderInfo = function (nAll) {
    var d = this.data, s = this.state;
    var parts = this.activeCircuits().map(function (ci) {
      var c = d.circuits[ci];
      return c.label + ": " + c.n_kept + " of " + c.n_edges + " graph edges kept (" + c.n_residual + " residual, "
        + c.n_direct + " direct on nodes; " + c.n_live + " on an input-to-logits path)";
    });
    var text = parts.join("; ") + ". Drawn: " + this.shown.length + " of " + nAll
      + (s.level === "heads" ? " merged arrows (heads and MLPs on input-to-logits paths)"
         : " arrows" + (s.liveOnly ? " on paths" : "")) + ".";
    if (s.pinned) {
      text += " Pinned " + s.pinned + ": " + this.closure.up + " nodes upstream, " + this.closure.down
        + " downstream, " + this.closure.edges + " arrows on its paths (click the background to unpin).";
    } else {
      text += " Click a node to pin it and highlight its paths; drag to pan, wheel to zoom.";
    }
    this.info.textContent = text;
  };

  Viewer.prototype.renderLegend = function () {
    var d = this.data, s = this.state, lg = this.legend, self = this;
    while (lg.firstChild) lg.removeChild(lg.firstChild);
    if (s.mode === "compare" && this.activeCircuits().length === 2) {
      ["shared", "left", "right"].forEach(function (m) {
        var span = h("span", {}, lg);
        h("span", { "class": "av-swatch", style: "background:" + d.comparison_fills[m] + ";border-color:"
                    + d.comparison_colors[m] }, span);
        span.appendChild(document.createTextNode(self.memberLabel(m)));
      });
    }
    Object.keys(d.edge_styles).forEach(function (k) {
      var st = d.edge_styles[k], span = h("span", {}, lg);
      h("span", { "class": "av-line-swatch", style: "border-top:2px " + (st[1] === "2,3" ? "dotted " : st[1] ? "dashed " : "solid ")
                  + (s.mode === "compare" ? "#555" : st[0]) }, span);
      span.appendChild(document.createTextNode(k));
    });
    Object.keys(d.role_colors).forEach(function (r) {
      var span = h("span", {}, lg);
      h("span", { "class": "av-swatch", style: "background:" + d.role_colors[r] }, span);
      span.appendChild(document.createTextNode(r));
    });
    h("span", { "class": "av-muted" }, lg, (s.level === "heads"
      ? "head level: the kept edges between two nodes merged, width ~ summed importance, line: the input carrying most"
      : "edge level: width ~ importance; q/k/v arrows enter a head left/middle/right")
      + "; importance = a kept edge's place in its circuit's ranking by the score that kept it");
  };

  Viewer.prototype.pin = function (name) {
    this.state.pinned = this.state.pinned === name ? null : name;
    this.render();
    this.renderPanel();
  };

  Viewer.prototype.highlight = function () {
    var s = this.state, self = this, up = {}, down = {}, edges = 0;
    var ins = {}, outs = {};
    this.shown.forEach(function (e) {
      (ins[e.down] = ins[e.down] || []).push(e);
      (outs[e.up] = outs[e.up] || []).push(e);
    });
    function walk(start, adj, end, seen) {
      var stack = [start];
      while (stack.length) {
        var n = stack.pop();
        (adj[n] || []).forEach(function (e) { var m = e[end]; if (!seen[m]) { seen[m] = true; stack.push(m); } });
      }
    }
    if (s.pinned) { walk(s.pinned, ins, "up", up); walk(s.pinned, outs, "down", down); }
    this.shown.forEach(function (e) {
      var on = s.pinned && ((e.down === s.pinned || up[e.down]) || (e.up === s.pinned || down[e.up]));
      if (on) edges += 1;
      e.el.setAttribute("class", "av-edge av-" + e.member + (s.pinned ? (on ? " av-hl" : " av-dim") : ""));
    });
    Object.keys(this.nodeEls).forEach(function (name) {
      var g = self.nodeEls[name], base = g.getAttribute("class").replace(/ av-(hl|dim|pinned)/g, "");
      if (s.pinned) base += name === s.pinned ? " av-pinned" : (up[name] || down[name] ? " av-hl" : " av-dim");
      g.setAttribute("class", base);
    });
    this.closure = { up: Object.keys(up).length, down: Object.keys(down).length, edges: edges };
    this.svg.setAttribute("data-pinned", s.pinned || "");
    this.renderInfo(this.currentEdges().length);
  };

  /* ----- attention patterns of a pinned head ------------------------------------------------------ */
  Viewer.prototype.renderPanel = function () {
    var p = this.panel, d = this.data, name = this.state.pinned, att = d.attention;
    while (p.firstChild) p.removeChild(p.firstChild);
    if (!name) return;
    var n = d.nodes[name];
    h("h3", {}, p, name + (n.role ? " (" + n.role + ")" : ""));
    if (!att || !att.patterns[name]) {
      h("p", { "class": "av-muted" }, p, n.kind === "head" ? "No attention patterns stored for this head."
        : "Attention patterns are shown for heads.");
      return;
    }
    var an = att.analogy && att.analogy[name];
    if (an) {
      h("p", {}, p, "Analogy " + att.tasks.map(function (t) { return t.name; }).slice(0, 2).join(" vs ")
        + ": 1 - TV " + fmt(an.tv_similarity) + " (shuffled roles " + fmt(an.baseline_tv) + "), Pearson "
        + fmt(an.pearson) + " (shuffled " + fmt(an.baseline_pearson) + ").");
      var tbl = h("table", { "class": "av-small" }, p), tr = h("tr", {}, tbl);
      h("th", {}, tr, "attention at the scored position to");
      att.tasks.slice(0, 2).forEach(function (t) { h("th", {}, tr, t.name); });
      att.roles.forEach(function (r, i) {
        var row = h("tr", {}, tbl);
        h("td", {}, row, r);
        h("td", { "class": "num" }, row, fmt(an.dist_a[i]));
        h("td", { "class": "num" }, row, fmt(an.dist_b[i]));
      });
    }
    var rowDiv = h("div", { "class": "av-attn-row" }, p), self = this;
    att.tasks.forEach(function (t, ti) {
      var box = h("div", { "class": "av-attn-task" }, rowDiv);
      h("h4", {}, box, t.name);
      t.prompts.forEach(function (pr, pi) { self.heatmap(box, pr, att.patterns[name][ti][pi]); });
    });
  };

  function decodePattern(b64, size) {
    var raw = atob(b64), m = [], k = 0;
    for (var i = 0; i < size; i++) {
      var row = new Array(size);
      for (var j = 0; j < size; j++) row[j] = j <= i ? raw.charCodeAt(k++) / 255 : 0;
      m.push(row);
    }
    return m;
  }

  Viewer.prototype.heatmap = function (box, pr, b64) {
    var size = pr.tokens.length, m = decodePattern(b64, size), self = this;
    var cell = Math.max(5, Math.min(14, Math.floor(420 / size))), lab = 62;
    var W = lab + size * cell + 4, H = lab + size * cell + 4;
    var svg = el("svg", { "class": "av-attn-map", width: W, height: H, viewBox: "0 0 " + W + " " + H }, box);
    for (var i = 0; i < size; i++) {
      for (var j = 0; j <= i; j++) {
        var v = m[i][j], c = Math.round(255 - 215 * Math.sqrt(v));
        el("rect", { x: lab + j * cell, y: lab + i * cell, width: cell, height: cell,
                     fill: "rgb(" + c + "," + c + "," + Math.round(255 - 120 * Math.sqrt(v)) + ")" }, svg);
      }
    }
    el("rect", { x: lab - 1, y: lab + pr.scored * cell, width: (pr.scored + 1) * cell + 2, height: cell,
                 fill: "none", stroke: "#d00", "stroke-width": 1.5, "class": "av-scored-row" }, svg);
    pr.tokens.forEach(function (tok, i) {
      var t = el("text", { x: lab - 3, y: lab + i * cell + cell / 2, "text-anchor": "end",
                           "dominant-baseline": "central", "class": i === pr.scored ? "av-scored" : "" }, svg);
      t.textContent = JSON.stringify(tok).slice(1, -1).slice(0, 12);
      var u = el("text", { x: 0, y: 0, transform: "translate(" + (lab + i * cell + cell / 2) + "," + (lab - 3)
                           + ") rotate(-90)", "dominant-baseline": "central",
                           "class": pr.roles[i] === "correct answer" || pr.roles[i] === "wrong answer" ? "av-scored" : "" }, svg);
      u.textContent = JSON.stringify(tok).slice(1, -1).slice(0, 12);
    });
    svg.addEventListener("mousemove", function (ev) {
      var r = svg.getBoundingClientRect(), x = ev.clientX - r.left - lab, y = ev.clientY - r.top - lab;
      var i = Math.floor(y / cell), j = Math.floor(x / cell);
      if (i < 0 || j < 0 || i >= size || j > i) { self.hideTip(); return; }
      self.showTip(ev, "query " + i + " " + JSON.stringify(pr.tokens[i]) + " -> key " + j + " "
        + JSON.stringify(pr.tokens[j]) + " (" + pr.roles[j] + "): " + fmt(m[i][j]));
    });
    svg.addEventListener("mouseleave", function () { self.hideTip(); });
    var top = m[pr.scored].map(function (v, j) { return [v, j]; }).sort(function (a, b) { return b[0] - a[0]; })
      .slice(0, 4).map(function (x) { return JSON.stringify(pr.tokens[x[1]]) + " " + pr.roles[x[1]] + " "
        + fmt(x[0]); });
    h("div", { "class": "av-muted", style: "max-width:" + W + "px" }, box, "scored row (red): " + top.join("; "));
  };

  /* ----- pan, zoom, tooltips ---------------------------------------------------------------------- */
  Viewer.prototype.setView = function (v) {
    this.view = v;
    this.svg.setAttribute("viewBox", v.x + " " + v.y + " " + v.w + " " + v.h);
  };

  /* Fit the layout's width to the panel: the graph spans the viewer, its height follows (at most most of the
     window's, or the --acdc-height a host sets, as a notebook cell does; a taller graph starts at the logits,
     drag to see the rest). Refit when the panel's width changes. */
  Viewer.prototype.fit = function () {
    var L = this.data.layout, width = this.svg.clientWidth || this.root.clientWidth || 800;
    var scale = Math.min(width / L.width, MAX_SCALE);
    var cap = Math.max(MIN_HEIGHT, MAX_WINDOW_SHARE * (window.innerHeight || 800));
    var fixed = parseFloat(window.getComputedStyle(this.svg).getPropertyValue("--acdc-height"));
    var height = fixed > 0 ? fixed : Math.min(L.height * scale, cap);  /* a host's fixed height (notebooks) */
    this.svg.style.height = height + "px";
    this.fittedWidth = width;
    this.setView({ x: (L.width - width / scale) / 2, y: 0, w: width / scale, h: height / scale });
  };

  Viewer.prototype.watchSize = function () {
    var self = this;
    if (typeof ResizeObserver === "undefined") return;
    new ResizeObserver(function () {
      if (self.svg.clientWidth > 0 && Math.abs(self.svg.clientWidth - self.fittedWidth) > 1) self.fit();
    }).observe(this.root);
  };

  Viewer.prototype.bindPanZoom = function () {
    var self = this, svg = this.svg, drag = null;
    svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = svg.getBoundingClientRect(), v = self.view;
      var fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
      var f = Math.exp(Math.max(-0.5, Math.min(0.5, ev.deltaY * 0.0015)));
      var w = v.w * f, hh = v.h * f;
      self.setView({ x: v.x + fx * (v.w - w), y: v.y + fy * (v.h - hh), w: w, h: hh });
    }, { passive: false });
    svg.addEventListener("pointerdown", function (ev) {
      drag = { x: ev.clientX, y: ev.clientY, v: self.view, moved: false };
    });
    svg.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var r = svg.getBoundingClientRect(), dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; svg.classList.add("av-dragging"); }
      if (drag.moved) {
        self.setView({ x: drag.v.x - dx * drag.v.w / r.width, y: drag.v.y - dy * drag.v.h / r.height,
                       w: drag.v.w, h: drag.v.h });
      }
    });
    function end() { svg.classList.remove("av-dragging"); setTimeout(function () { drag = null; }, 0); }
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointerleave", end);
    svg.addEventListener("click", function () {
      if (drag && drag.moved) return;
      if (self.state.pinned) self.pin(self.state.pinned);
    });
  };

  Viewer.prototype.showTip = function (ev, text) {
    var r = this.root.getBoundingClientRect();
    this.tip.textContent = text;
    this.tip.style.display = "block";
    this.tip.style.left = (ev.clientX - r.left + 12) + "px";
    this.tip.style.top = (ev.clientY - r.top + 12) + "px";
  };
  Viewer.prototype.hideTip = function () { this.tip.style.display = "none"; };

  function start() {
    var roots = document.querySelectorAll(".acdc-viewer");
    for (var i = 0; i < roots.length; i++) {
      var root = roots[i];
      if (root.getAttribute("data-ready")) continue;
      var blob = root.querySelector("script.acdc-viewer-data");
      var data = JSON.parse(blob.textContent);
      window.acdcViewerCount = (window.acdcViewerCount || 0) + 1;  // unique per page, across notebook outputs
      data.uid = window.acdcViewerCount;
      root.acdcViewer = new Viewer(root, data);
      root.setAttribute("data-ready", "1");
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

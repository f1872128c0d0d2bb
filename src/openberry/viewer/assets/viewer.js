/* openberry tree viewer: inlined into the page by openberry.viewer.html.
 *
 * Reads the tree from the JSON script element #tree-data, builds the whole DOM once
 * and handles clicks by delegation. Model output is untrusted: every string from the tree goes in
 * through textContent (or a property such as title), never through innerHTML.
 *
 * Opening the page with the hash #selftest (or #selftest-ID to pick the node whose details are
 * checked) runs a few clicks and writes what it observed, as JSON, into <pre id="selftest">: the
 * browser test in tests/viewer reads it back with `chromium --headless --dump-dom`.
 * The hash #node-ID selects and reveals node ID on load.
 */
(function () {
  "use strict";

  var AUTO_EXPAND_LIMIT = 400; // larger trees open with depth >= 2 collapsed, chosen path open
  var PREVIEW_CHARS = 240;
  var MAX_CHILD_LINKS = 60;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmtNum(x, digits) {
    if (x === null || x === undefined) return "\u2013";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    return x.toFixed(digits === undefined ? 3 : digits);
  }

  function fmtStat(x) {
    if (x === null || x === undefined) return "null";
    if (typeof x === "number") {
      if (Number.isInteger(x)) return x.toLocaleString("en-US");
      return String(Math.round(x * 10000) / 10000);
    }
    if (typeof x === "string") return x;
    return JSON.stringify(x);
  }

  function showError(message) {
    var tree = document.getElementById("tree");
    tree.textContent = "";
    tree.appendChild(el("div", "error", "Cannot show this tree: " + message));
  }

  var data;
  try {
    data = JSON.parse(document.getElementById("tree-data").textContent);
  } catch (err) {
    showError("the embedded tree data is not valid JSON (" + err + ")");
    return;
  }
  var nodes = data.nodes || [];
  var n = nodes.length;
  var chosen = data.chosen || [];
  var chosenSet = new Set(chosen);
  var liOf = new Array(n);
  var depth = new Array(n);
  var size = new Array(n); // subtree sizes, the node included
  var selected = null;

  // ---- header --------------------------------------------------------------------------------

  function buildHeader() {
    var problem = data.problem || {};
    document.getElementById("problem-text").textContent = problem.question || "";
    var meta = [];
    if (problem.id) meta.push("id: " + problem.id);
    if (problem.source) meta.push("source: " + problem.source);
    Object.keys(problem.meta || {}).forEach(function (key) {
      var v = problem.meta[key];
      meta.push(key + ": " + (typeof v === "string" ? v : JSON.stringify(v)));
    });
    document.getElementById("problem-meta").textContent = meta.join("  \u00b7  ");

    var maxDepth = 0, leaves = 0, terminals = 0, ptok = 0, gtok = 0;
    for (var i = 0; i < n; i++) {
      maxDepth = Math.max(maxDepth, depth[i]);
      if (!nodes[i].children.length) leaves++;
      if (nodes[i].terminal) terminals++;
      ptok += nodes[i].prompt_tokens || 0;
      gtok += nodes[i].generated_tokens || 0;
    }
    var chips = document.getElementById("chips");
    function chip(label, value) {
      var c = el("span", "chip");
      c.appendChild(el("span", null, label + " "));
      c.appendChild(el("b", null, value));
      chips.appendChild(c);
    }
    chip("method", data.method || "\u2013");
    chip("nodes", n.toLocaleString("en-US"));
    chip("depth", maxDepth);
    chip("leaves", leaves);
    chip("terminal", terminals);
    chip("chosen", chosen.length ? chosen.length + " nodes" : "none");
    chip("tokens p/g", ptok.toLocaleString("en-US") + " / " + gtok.toLocaleString("en-US"));

    var info = data.info || {};
    var stats = info.stats;
    var table = document.getElementById("stats");
    if (stats && typeof stats === "object" && !Array.isArray(stats)) {
      Object.keys(stats).forEach(function (key) {
        var tr = el("tr");
        tr.appendChild(el("td", null, key));
        tr.appendChild(el("td", null, fmtStat(stats[key])));
        table.appendChild(tr);
      });
    }
    if (Object.keys(info).length) {
      var details = document.getElementById("run-info");
      details.hidden = false;
      document.getElementById("run-info-json").textContent = JSON.stringify(info, null, 2);
    }
    if (!chosen.length) document.getElementById("btn-chosen").disabled = true;
  }

  // ---- tree ----------------------------------------------------------------------------------

  // The grader's verdict on a node's answer, when one is recorded (node.info.verified, written by
  // berry eval / berry collect after the search); null otherwise. Only a verdict colours an answer.
  function verdict(node) {
    var v = node.info ? node.info.verified : undefined;
    return v === true || v === false ? v : null;
  }

  function effectiveRating(node) {
    if (node.rating) return { label: node.rating, derived: false };
    if (node.value === null || node.value === undefined) return null;
    return { label: node.value >= 0.5 ? "positive" : "negative", derived: true };
  }

  function valueBar(value) {
    var cell = el("span", "valuecell");
    var bar = el("span", "bar");
    var fill = el("span");
    if (typeof value === "number") {
      var v = Math.max(0, Math.min(1, value));
      fill.style.width = (v * 100).toFixed(1) + "%";
      fill.style.background = "hsl(" + Math.round(v * 120) + ", 55%, 45%)";
    }
    bar.appendChild(fill);
    cell.appendChild(bar);
    cell.appendChild(el("span", null, fmtNum(value)));
    cell.title = "value (estimated probability of success)";
    return cell;
  }

  function preview(text) {
    var t = (text || "").replace(/\s+/g, " ").trim();
    return t.length > PREVIEW_CHARS ? t.slice(0, PREVIEW_CHARS) + "\u2026" : t;
  }

  function buildRow(node) {
    var row = el("div", "row");
    if (depth[node.id]) {
      var indent = el("span", "indent");
      indent.style.width = "min(" + depth[node.id] * 16 + "px, 20%)";
      row.appendChild(indent);
    }
    var toggle;
    if (node.children.length) {
      toggle = el("button", "toggle");
      toggle.type = "button";
      toggle.title = "collapse / expand";
    } else {
      toggle = el("span", "toggle leaf");
    }
    row.appendChild(toggle);
    row.appendChild(el("span", "nid", "#" + node.id));
    if (node.meta_action) row.appendChild(el("span", "meta " + node.meta_action, node.meta_action));
    var p = preview(node.text);
    var pv = el("span", "preview", p || "(empty)");
    if (!p) pv.style.color = "var(--muted)";
    row.appendChild(pv);
    if (size[node.id] > 1) {
      row.appendChild(el("span", "hidden-count", "+" + (size[node.id] - 1)));
    }
    if (node.terminal) {
      var ans = node.answer === null || node.answer === undefined;
      var v = verdict(node);
      var cls = ans ? "answer noanswer" : "answer";
      if (v !== null) cls += v ? " correct" : " wrong";
      var a = el("span", cls, ans ? "no answer" : node.answer);
      a.title =
        "final answer \u00b7 " +
        (v === null ? "not verified" : v ? "verified correct" : "verified wrong");
      row.appendChild(a);
    }
    var visits = el("span", "cell visits", String(node.visits));
    visits.title = "visits";
    row.appendChild(visits);
    row.appendChild(valueBar(node.value));
    var prior = el("span", "cell prior", node.prior === null ? "" : fmtNum(node.prior));
    prior.title = "prior";
    row.appendChild(prior);
    var tokens = el("span", "cell tokens", node.prompt_tokens + "/" + node.generated_tokens);
    tokens.title = "prompt / generated tokens";
    row.appendChild(tokens);
    var r = effectiveRating(node);
    var rating = el("span", "cell rating" + (r ? " " + r.label + (r.derived ? " derived" : "") : ""));
    if (r) {
      rating.textContent = r.label === "positive" ? "+" : r.label === "negative" ? "\u2212" : "?";
      rating.title = r.label + (r.derived ? " (derived from value)" : " (rating label)");
    }
    row.appendChild(rating);
    return row;
  }

  function buildTree() {
    var i;
    for (i = 0; i < n; i++) {
      var parent = nodes[i].parent;
      depth[i] = parent === null || parent === undefined ? 0 : depth[parent] + 1;
      size[i] = 1;
    }
    for (i = n - 1; i > 0; i--) size[nodes[i].parent] += size[i];
    for (i = 0; i < n; i++) {
      var node = nodes[i];
      var li = el("li", "node" + (chosenSet.has(i) ? " chosen" : ""));
      li.dataset.nodeId = String(i);
      li.appendChild(buildRow(node));
      if (node.children.length) li.appendChild(el("ul"));
      liOf[i] = li;
    }
    for (i = 0; i < n; i++) {
      var ul = liOf[i].lastChild;
      nodes[i].children.forEach(function (c) {
        ul.appendChild(liOf[c]);
      });
    }
    var head = el("div", "colhead");
    head.appendChild(el("span", "spacer", "node \u00b7 meta action \u00b7 text \u00b7 answer"));
    [
      ["cell visits", "visits"],
      ["valuecell", "value"],
      ["cell prior", "prior"],
      ["cell tokens", "tokens p/g"],
      ["cell rating", "rating"],
    ].forEach(function (c) {
      head.appendChild(el("span", c[0], c[1]));
    });
    var rootList = el("ul");
    if (n) rootList.appendChild(liOf[0]);
    var treeEl = document.getElementById("tree");
    treeEl.appendChild(head);
    treeEl.appendChild(rootList);
  }

  // ---- actions -------------------------------------------------------------------------------

  function setCollapsed(id, collapsed) {
    if (nodes[id].children.length) liOf[id].classList.toggle("collapsed", collapsed);
  }

  function expandAll() {
    for (var i = 0; i < n; i++) setCollapsed(i, false);
  }

  function collapseAll() {
    for (var i = 0; i < n; i++) setCollapsed(i, true);
  }

  function reveal(id) {
    for (var p = nodes[id].parent; p !== null && p !== undefined; p = nodes[p].parent) {
      setCollapsed(p, false);
    }
  }

  function showChosen() {
    if (!chosen.length) return;
    collapseAll();
    chosen.forEach(function (id) {
      setCollapsed(id, false);
    });
    setCollapsed(chosen[chosen.length - 1], true);
    select(chosen[chosen.length - 1], true);
  }

  function initialState() {
    if (n > AUTO_EXPAND_LIMIT) {
      for (var i = 0; i < n; i++) setCollapsed(i, depth[i] >= 2);
      chosen.forEach(function (id) {
        reveal(id);
      });
    }
  }

  // ---- details panel -------------------------------------------------------------------------

  function link(id) {
    var b = el("button", "link", "#" + id);
    b.type = "button";
    b.dataset.goto = String(id);
    return b;
  }

  function field(dl, label, value) {
    dl.appendChild(el("dt", null, label));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    dl.appendChild(dd);
  }

  function pathTo(id) {
    var ids = [id];
    while (nodes[ids[0]].parent !== null && nodes[ids[0]].parent !== undefined) {
      ids.unshift(nodes[ids[0]].parent);
    }
    return ids;
  }

  function showDetails(id) {
    var node = nodes[id];
    var panel = document.getElementById("details-body");
    panel.textContent = "";
    var title = el("div", "title", "Node #" + id);
    panel.appendChild(title);
    var tags = [];
    if (node.meta_action) tags.push(node.meta_action);
    if (chosenSet.has(id)) tags.push("on chosen path");
    if (node.terminal) tags.push("terminal");
    if (tags.length) panel.appendChild(el("div", "tags", tags.join(" \u00b7 ")));

    var dl = el("dl");
    var path = el("span");
    pathTo(id).forEach(function (p, k) {
      if (k) path.appendChild(document.createTextNode(" \u203a "));
      path.appendChild(link(p));
    });
    field(dl, "path", path);
    field(dl, "depth", String(depth[id]));
    field(dl, "parent", node.parent === null ? "\u2013 (root)" : link(node.parent));
    var kids = el("span");
    node.children.slice(0, MAX_CHILD_LINKS).forEach(function (c, k) {
      if (k) kids.appendChild(document.createTextNode(" "));
      kids.appendChild(link(c));
    });
    if (node.children.length > MAX_CHILD_LINKS) {
      kids.appendChild(document.createTextNode(" \u2026 (" + node.children.length + " in all)"));
    }
    if (!node.children.length) kids.textContent = "\u2013 (leaf)";
    field(dl, "children", kids);
    field(dl, "subtree size", String(size[id]));
    field(dl, "meta_action", node.meta_action === null ? "null" : node.meta_action);
    field(dl, "visits", String(node.visits));
    field(dl, "value", node.value === null ? "null" : String(node.value));
    field(dl, "prior", node.prior === null ? "null" : String(node.prior));
    field(dl, "rewards", JSON.stringify(node.rewards));
    var r = effectiveRating(node);
    field(
      dl,
      "rating",
      node.rating !== null ? node.rating : r ? "null (from value: " + r.label + ")" : "null"
    );
    field(dl, "prompt_tokens", String(node.prompt_tokens));
    field(dl, "generated_tokens", String(node.generated_tokens));
    field(dl, "terminal", String(node.terminal));
    field(dl, "answer", node.answer === null ? "null" : node.answer);
    var v = verdict(node);
    field(dl, "verified", v === null ? "not verified" : v ? "correct" : "wrong");
    panel.appendChild(dl);

    panel.appendChild(el("h2", null, "text"));
    var text = el("pre", null, node.text);
    text.id = "detail-text";
    panel.appendChild(text);
    panel.appendChild(el("h2", null, "info"));
    var info = node.info || {};
    panel.appendChild(
      Object.keys(info).length
        ? el("pre", "info", JSON.stringify(info, null, 2))
        : el("div", "empty", "(empty)")
    );
  }

  function select(id, scroll) {
    if (id < 0 || id >= n) return;
    if (selected !== null) liOf[selected].classList.remove("selected");
    selected = id;
    liOf[id].classList.add("selected");
    showDetails(id);
    if (scroll) {
      reveal(id);
      liOf[id].firstChild.scrollIntoView({ block: "nearest" });
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  function wire() {
    document.getElementById("tree").addEventListener("click", function (ev) {
      var target = ev.target;
      var li = target.closest(".node");
      if (!li) return;
      var id = Number(li.dataset.nodeId);
      var toggle = target.closest(".toggle");
      if (toggle && !toggle.classList.contains("leaf")) {
        setCollapsed(id, !li.classList.contains("collapsed"));
        return;
      }
      if (target.closest(".row")) select(id, false);
    });
    document.getElementById("details").addEventListener("click", function (ev) {
      var b = ev.target.closest("button.link");
      if (b) select(Number(b.dataset.goto), true);
    });
    document.getElementById("btn-expand").addEventListener("click", expandAll);
    document.getElementById("btn-collapse").addEventListener("click", collapseAll);
    document.getElementById("btn-chosen").addEventListener("click", showChosen);
  }

  // ---- self-test (#selftest) -----------------------------------------------------------------

  function visible(id) {
    return liOf[id].firstChild.getClientRects().length > 0;
  }

  function descendants(id) {
    var out = [];
    var stack = nodes[id].children.slice();
    while (stack.length) {
      var c = stack.pop();
      out.push(c);
      Array.prototype.push.apply(stack, nodes[c].children);
    }
    return out;
  }

  function visibleIds() {
    var out = [];
    for (var i = 0; i < n; i++) if (visible(i)) out.push(i);
    return out;
  }

  function selfTest(detailId, buildMs) {
    var res = { build_ms: buildMs };
    var all = Array.prototype.slice.call(document.querySelectorAll(".node"));
    res.node_elements = all.length;
    res.node_ids = all.map(function (e) {
      return Number(e.dataset.nodeId);
    });
    res.chosen_ids = Array.prototype.slice
      .call(document.querySelectorAll(".node.chosen"))
      .map(function (e) {
        return Number(e.dataset.nodeId);
      });
    res.scripts = document.scripts.length;
    res.answers = {}; // node id -> the class of its answer span
    all.forEach(function (e) {
      var a = e.firstChild.querySelector(".answer");
      if (a) res.answers[e.dataset.nodeId] = a.className;
    });

    document.getElementById("btn-expand").click();
    res.visible_after_expand_all = visibleIds().length;
    var target = null;
    for (var i = 0; i < n && target === null; i++) if (size[i] > 2) target = i;
    for (i = 0; i < n && target === null; i++) if (size[i] > 1) target = i;
    if (target !== null) {
      var desc = descendants(target);
      var toggle = liOf[target].firstChild.querySelector(".toggle");
      toggle.click();
      res.collapse = {
        node: target,
        descendants: desc.length,
        collapsed_class: liOf[target].classList.contains("collapsed"),
        node_visible: visible(target),
        visible_descendants: desc.filter(visible).length,
      };
      toggle.click();
      res.collapse.visible_descendants_after_reexpand = desc.filter(visible).length;
    }

    var pick = detailId !== null && detailId >= 0 && detailId < n ? detailId : n - 1;
    liOf[pick].firstChild.querySelector(".preview").click();
    res.details = {
      node: pick,
      selected: liOf[pick].classList.contains("selected"),
      text: document.getElementById("detail-text").textContent,
      title: document.querySelector("#details-body .title").textContent,
    };

    document.getElementById("btn-collapse").click();
    res.visible_after_collapse_all = visibleIds();
    var chosenButton = document.getElementById("btn-chosen");
    res.chosen_button_disabled = chosenButton.disabled;
    chosenButton.click();
    res.visible_after_show_chosen = visibleIds();
    res.selected_after_show_chosen = selected;

    var pre = document.getElementById("selftest") || el("pre");
    pre.id = "selftest";
    pre.textContent = JSON.stringify(res);
    document.body.appendChild(pre);
  }

  // ---- main ----------------------------------------------------------------------------------

  var hash = decodeURIComponent(location.hash || "");
  var started = performance.now();
  var buildMs = null;
  try {
    buildTree();
    buildHeader();
    wire();
    initialState();
    var m = /^#node-(\d+)$/.exec(hash);
    if (m && Number(m[1]) < n) select(Number(m[1]), true);
    else if (n) select(chosen.length ? chosen[chosen.length - 1] : 0, false);
    buildMs = Math.round(performance.now() - started);
  } catch (err) {
    showError(String(err));
    if (hash.indexOf("#selftest") === 0) {
      var pre = el("pre", null, JSON.stringify({ error: String(err) }));
      pre.id = "selftest";
      document.body.appendChild(pre);
    }
    return;
  }
  var st = /^#selftest(?:-(\d+))?$/.exec(hash);
  if (st) {
    try {
      selfTest(st[1] === undefined ? null : Number(st[1]), buildMs);
    } catch (err) {
      var out = el("pre", null, JSON.stringify({ error: String(err) + "\n" + (err.stack || "") }));
      out.id = "selftest";
      document.body.appendChild(out);
    }
  }
})();

(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("console-config").textContent);
  const $ = (id) => document.getElementById(id);
  let apiKey = null; // kept in this page's memory only
  let timer = null;
  let lastUpdate = null;

  // Elements are built with text nodes only: names and descriptions come from plugins.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const count = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));

  function ms(value) {
    if (value === null || value === undefined) return "–";
    if (value >= 1000) return (value / 1000).toFixed(value >= 10000 ? 0 : 1) + " s";
    if (value >= 10) return value.toFixed(0) + " ms";
    if (value >= 1) return value.toFixed(1) + " ms";
    return value.toFixed(2) + " ms";
  }

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return (value >= 100 || i === 0 ? value.toFixed(0) : value.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  // -- the sparkline: p50 (and p99, lighter) per interval over the history window ------------

  const SVG = "http://www.w3.org/2000/svg";

  function sparkline(recent, ages, minutes) {
    const width = 150, height = 30, pad = 2;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("x1", 0); base.setAttribute("x2", width);
    base.setAttribute("y1", height - 0.5); base.setAttribute("y2", height - 0.5);
    base.setAttribute("stroke", "#dfe5ec");
    svg.append(base);
    if (!recent || !ages.length) return svg;
    const span = minutes * 60;
    const top = Math.max(0, ...recent.p99_ms.filter((v) => v !== null), ...recent.p50_ms.filter((v) => v !== null));
    const x = (age) => width - pad - ((width - 2 * pad) * Math.min(age, span)) / span;
    const y = (v) => height - pad - (top > 0 ? ((height - 2 * pad) * v) / top : 0);
    let drawn = 0;
    for (const [values, colour, stroke] of [[recent.p99_ms, "var(--spark-high)", 1], [recent.p50_ms, "var(--spark)", 1.6]]) {
      // Idle intervals have no latency: the line breaks there.
      let run = [];
      const flush = () => {
        if (run.length === 1) {
          const dot = document.createElementNS(SVG, "circle");
          dot.setAttribute("cx", run[0][0]); dot.setAttribute("cy", run[0][1]);
          dot.setAttribute("r", 1.6); dot.setAttribute("fill", colour);
          svg.append(dot);
        } else if (run.length > 1) {
          const line = document.createElementNS(SVG, "polyline");
          line.setAttribute("points", run.map((p) => p.join(",")).join(" "));
          line.setAttribute("fill", "none");
          line.setAttribute("stroke", colour);
          line.setAttribute("stroke-width", stroke);
          svg.append(line);
        }
        drawn += run.length;
        run = [];
      };
      values.forEach((v, i) => {
        if (v === null) flush();
        else run.push([x(ages[i]).toFixed(1), y(v).toFixed(1)]);
      });
      flush();
    }
    svg.setAttribute("data-points", drawn);
    const title = document.createElementNS(SVG, "title");
    const last = recent.p50_ms.filter((v) => v !== null).pop();
    title.textContent = last === undefined ? "no requests in the window" : `p50 of the latest busy interval: ${ms(last)}`;
    svg.append(title);
    return svg;
  }

  // -- rendering ----------------------------------------------------------------------------

  function card(label, value, figure) {
    return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", "data-figure": figure }, value));
  }

  function renderOverview(state) {
    const section = $("overview");
    if (!state.metrics.enabled) { section.replaceChildren(); return; }
    let requests = 0, errors = 0, calls = 0, callErrors = 0;
    const apis = state.plugins.flatMap((p) => p.apis).filter((a) => a.figures);
    for (const f of [...apis.map((a) => a.figures), ...state.routes.map((r) => r.figures)]) {
      requests += f.requests; errors += f.errors;
    }
    for (const fn of [...state.plugins.flatMap((p) => p.remote_functions), ...state.other_remote_functions]) {
      if (fn.figures) { calls += fn.figures.calls; callErrors += fn.figures.errors; }
    }
    const process = state.service.process || {};
    section.replaceChildren(
      card("HTTP requests", count(requests), "requests"),
      card("Server errors (5xx)", count(errors), "errors"),
      card("In flight", count(state.metrics.in_flight), "in-flight"),
      card("@remote calls", count(calls), "calls"),
      card("@remote errors", count(callErrors), "call-errors"),
      card("CPU time", process.cpu_seconds === undefined ? "–" : process.cpu_seconds.toFixed(1) + " s", "cpu"),
      card("Memory (RSS)", bytes(process.resident_memory_bytes), "memory"),
      card("Loop blocked", state.metrics.loop_blocked === null ? "watchdog off" : count(state.metrics.loop_blocked), "loop-blocked"),
    );
  }

  function pool(name, use, size) {
    if (!use) return el("div", { class: "pool", "data-pool": name }, el("strong", {}, name), el("div", { class: "figure empty" }, `not started (size ${size})`));
    const share = use.size ? Math.min(1, use.busy / use.size) : 0;
    const bar = el("div", { class: "bar" }, el("div", { style: `width:${(share * 100).toFixed(1)}%` }));
    return el("div", { class: "pool", "data-pool": name },
      el("strong", {}, name),
      el("div", { class: "figure" }, `${use.busy} busy of ${use.size} · ${use.started} started · ${use.queued} queued`),
      bar);
  }

  function renderBackend(backend) {
    const section = $("backend");
    const children = [el("h2", {}, `Backend: ${backend.name}`)];
    if (backend.pools) {
      children.push(el("div", { class: "pools" },
        pool("Thread pool", backend.pools.threads, backend.pool_sizes.threads),
        pool("Process pool", backend.pools.processes, backend.pool_sizes.processes)));
    }
    if (backend.cluster) children.push(...rayCluster(backend.cluster));
    section.replaceChildren(...children);
  }

  function amount(name, value) {
    return /memory/.test(name) ? bytes(value) : Number.isInteger(value) ? String(value) : value.toFixed(2);
  }

  function rayCluster(cluster) {
    if (!cluster.connected) return [el("p", { class: "empty" }, "Not connected to Ray yet: it starts with the first @remote call or `framex run`.")];
    const names = [...new Set(cluster.nodes.flatMap((n) => Object.keys(n.resources)))].sort();
    const total = cluster.resources.total, available = cluster.resources.available;
    const usage = el("p", { class: "figure" }, Object.keys(total).sort().map((name) =>
      el("span", { class: "badge", "data-resource": name }, `${name}: ${amount(name, total[name] - (available[name] ?? 0))} used of ${amount(name, total[name])}`), " "));
    const rows = cluster.nodes.map((node) => el("tr", { "data-node": node.id },
      el("td", {}, el("code", {}, node.id.slice(0, 12))),
      el("td", {}, node.address),
      el("td", { class: node.alive ? "" : "bad" }, node.alive ? "alive" : "dead"),
      names.map((name) => el("td", { class: "num" }, node.resources[name] === undefined ? "–" : amount(name, node.resources[name])))));
    return [
      el("h3", {}, `Cluster: ${cluster.nodes.length} node(s)`),
      usage,
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Node"), el("th", {}, "Address"), el("th", {}, "State"),
        names.map((n) => el("th", { class: "num" }, n)))), el("tbody", {}, rows)),
    ];
  }

  // Remote functions have no in-flight column: their calls are counted when they finish.
  const figureHeads = (first, countLabel, inFlight = true) => el("tr", {},
    el("th", {}, first), el("th", { class: "num" }, countLabel), el("th", { class: "num" }, "Errors"),
    el("th", { class: "num" }, "p50"), el("th", { class: "num" }, "p99"),
    inFlight ? el("th", { class: "num" }, "In flight") : null, el("th", {}, "Latency"));

  function figureCells(f, countKey, history, inFlight) {
    const columns = inFlight === null ? 5 : 6;
    if (!f) return [el("td", { class: "num", colspan: columns }, el("span", { class: "empty" }, "not counted"))];
    return [
      el("td", { class: "num", "data-figure": "requests" }, count(f[countKey])),
      el("td", { class: "num" + (f.errors ? " bad" : ""), "data-figure": "errors" }, count(f.errors)),
      el("td", { class: "num", "data-figure": "p50" }, ms(f.p50_ms)),
      el("td", { class: "num", "data-figure": "p99" }, ms(f.p99_ms)),
      inFlight === null ? null : el("td", { class: "num", "data-figure": "in-flight" }, inFlight),
      el("td", {}, sparkline(f.recent, history.age_s, history.minutes)),
    ];
  }

  function apiRow(api, history, metricsOn) {
    const where = api.path
      ? [api.methods.map((m) => el("span", { class: `method ${m}` }, m)), el("code", {}, api.path)]
      : [el("span", { class: "method FUNC" }, "FUNC"), el("code", {}, api.name)];
    const label = el("td", {}, where, api.summary ? el("div", { class: "summary" }, api.summary) : null);
    let cells;
    if (!metricsOn) cells = [el("td", { colspan: 6, class: "empty" }, "metrics off")];
    else if (!api.figures) cells = [el("td", { colspan: 6, class: "empty" }, "function API: not served over HTTP")];
    else cells = figureCells(api.figures, "requests", history, api.figures.in_flight === null ? "–" : count(api.figures.in_flight));
    return el("tr", { "data-api": api.name }, label, cells);
  }

  function remoteRow(fn, history, metricsOn) {
    const options = Object.entries(fn.options || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const label = el("td", {}, el("code", {}, fn.qualname),
      el("div", { class: "options" }, [fn.kind, fn.async ? "async" : null, fn.generator ? "generator" : null, options || null].filter(Boolean).join(" · ")));
    const cells = metricsOn ? figureCells(fn.figures, "calls", history, null) : [el("td", { colspan: 5, class: "empty" }, "metrics off")];
    return el("tr", { "data-remote": fn.name }, label, cells);
  }

  function renderPlugins(state) {
    const history = state.history, on = state.metrics.enabled;
    const cards = state.plugins.map((p) => {
      const byline = [p.author ? `by ${p.author}` : null, el("code", {}, p.module)];
      const head = el("div", { class: "plugin-head" },
        el("h2", {}, p.name), el("span", { class: "badge", "data-version": p.version }, `v${p.version}`),
        p.title && p.title !== p.name ? el("span", { class: "byline" }, p.title) : null,
        el("span", { class: "byline" }, byline.filter(Boolean).flatMap((part, i) => (i ? [" · ", part] : [part]))),
        p.url ? el("a", { href: p.url, rel: "noopener noreferrer", target: "_blank" }, "docs") : null);
      const parts = [head];
      if (p.description) parts.push(el("p", { class: "description" }, p.description));
      parts.push(el("h3", {}, `APIs (${p.apis.length})`));
      parts.push(p.apis.length
        ? el("table", {}, el("thead", {}, figureHeads("API", "Requests")), el("tbody", {}, p.apis.map((a) => apiRow(a, history, on))))
        : el("p", { class: "empty" }, "none"));
      if (p.remote_functions.length) {
        parts.push(el("h3", {}, `@remote functions (${p.remote_functions.length})`));
        parts.push(el("table", {}, el("thead", {}, figureHeads("Function", "Calls", false)), el("tbody", {}, p.remote_functions.map((f) => remoteRow(f, history, on)))));
      }
      return el("article", { class: "plugin", "data-plugin": p.name }, parts);
    });
    $("plugins").replaceChildren(...cards);
  }

  function renderRoutes(state) {
    const history = state.history;
    const section = $("routes");
    if (!state.metrics.enabled) { section.replaceChildren(el("h2", {}, "Service routes"), el("p", { class: "empty" }, "Counted when metrics are on.")); return; }
    const rows = state.routes.map((r) => el("tr", { "data-route": `${r.method} ${r.route}` },
      el("td", {}, el("span", { class: `method ${r.method}` }, r.method), el("code", {}, r.route)),
      figureCells(r.figures, "requests", history, null)));
    section.replaceChildren(el("h2", {}, "Service routes"),
      rows.length ? el("table", {}, el("thead", {}, figureHeads("Route", "Requests", false)), el("tbody", {}, rows)) : el("p", { class: "empty" }, "none requested yet"));
    const others = $("others");
    others.hidden = !state.other_remote_functions.length;
    others.replaceChildren(el("h2", {}, "Other @remote functions"),
      el("table", {}, el("thead", {}, figureHeads("Function", "Calls", false)), el("tbody", {}, state.other_remote_functions.map((f) => remoteRow({ kind: "", ...f }, history, true)))));
  }

  function render(state) {
    const s = state.service;
    $("service-name").textContent = s.name;
    document.title = `${s.name} console`;
    $("service-meta").replaceChildren(
      el("span", { "data-field": "version" }, `FrameX ${s.framex_version}`),
      el("span", { "data-field": "backend" }, `backend: ${s.adapter}`),
      el("span", { "data-field": "plugins" }, `${state.plugins.length} plugin(s)`),
      el("span", { "data-field": "uptime" }, `up ${duration(s.uptime_s)}`));
    if (!state.metrics.enabled) {
      notice("Metrics are off (metrics.enabled: false): requests, errors and latency are not counted, so only what is loaded is shown. Set metrics.enabled: true to see the figures.", "info");
    } else {
      notice(null);
    }
    renderOverview(state);
    renderBackend(state.backend);
    renderPlugins(state);
    renderRoutes(state);
    document.body.setAttribute("data-loaded", "true");
  }

  // -- fetching -----------------------------------------------------------------------------

  function notice(text, kind) {
    const box = $("notice");
    box.hidden = !text;
    box.className = "notice" + (kind === "error" ? " error" : "");
    box.textContent = text || "";
    box.setAttribute("data-kind", kind || "");
  }

  function updated() {
    $("updated").textContent = lastUpdate
      ? `Updated ${Math.max(0, Math.round((Date.now() - lastUpdate) / 1000))} s ago · every ${config.intervalMs / 1000} s`
      : "Loading…";
  }

  async function refresh() {
    clearTimeout(timer);
    const headers = { Accept: "application/json" };
    if (apiKey) headers.Authorization = "Bearer " + apiKey;
    try {
      const response = await fetch(config.stateUrl, { headers, cache: "no-store" });
      if (response.status === 401) {
        $("key-label").textContent = apiKey ? "That key was refused; enter another." : "The console's data needs an API key (auth.rules).";
        $("key-form").hidden = false;
        return; // until a key is entered
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      $("key-form").hidden = true;
      render(body.data);
      lastUpdate = Date.now();
    } catch (error) {
      notice(`Could not read ${config.stateUrl}: ${error.message}. Retrying.`, "error");
    }
    updated();
    timer = setTimeout(refresh, config.intervalMs);
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key-input").value.trim() || null;
    $("key-input").value = "";
    refresh();
  });
  setInterval(updated, 1000);
  refresh();
})();

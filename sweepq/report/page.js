let sortKey = "number", sortDir = 1, last = null;
function esc(s){return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));}
function num(x){return x === null || x === undefined ? "" : (typeof x === "number" ? Number(x.toPrecision(5)).toString() : esc(x));}
function dur(s){if(s === null || s === undefined) return ""; if(s < 60) return s.toFixed(1)+"s";
  const m = Math.floor(s/60); return m < 60 ? m+"m"+String(Math.floor(s%60)).padStart(2,"0")+"s" : Math.floor(m/60)+"h"+String(m%60).padStart(2,"0")+"m";}
function plot(id, fig){
  const el = document.getElementById(id);
  if(!fig){ el.innerHTML = ""; return; }
  Plotly.react(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
}
function cell(t, key){
  if(key === "number") return t.number; if(key === "duration") return t.duration;
  if(key.startsWith("p:")) return t.params[key.slice(2)]; return t[key];
}
function renderTrials(p){
  const m = p.sweep.metric || "metric";
  const cols = [["number","trial"],["state","state"]].concat(p.columns.map(c => ["p:"+c, c]))
    .concat([["best","best "+m],["last","last "+m],["steps","steps"],["duration","duration"],["worker","worker"],["reason","reason"]]);
  const rows = p.trials.slice().sort((a, b) => {
    const x = cell(a, sortKey), y = cell(b, sortKey);
    if(x === y) return a.number - b.number; if(x === null || x === undefined || x === "") return 1;
    if(y === null || y === undefined || y === "") return -1;
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
  });
  let h = "<table><thead><tr>" + cols.map(([k, l]) => `<th data-key="${esc(k)}" class="${k === sortKey ? (sortDir > 0 ? "sorted-asc" : "sorted-desc") : ""}">${esc(l)}</th>`).join("") + "</tr></thead><tbody>";
  for(const t of rows){
    h += "<tr>" + cols.map(([k]) => {
      const v = cell(t, k);
      if(k === "number") return `<td class="num"><span class="swatch" style="background:${t.colour}"></span>${v}</td>`;
      if(k === "state") return `<td class="state-${esc(v)}">${esc(v)}</td>`;
      if(k === "duration") return `<td class="num">${dur(v)}</td>`;
      return `<td class="${typeof v === "number" ? "num" : ""}">${num(v)}</td>`;
    }).join("") + "</tr>";
  }
  const el = document.getElementById("trials");
  el.innerHTML = h + "</tbody></table>";
  el.querySelectorAll("th").forEach(th => th.onclick = () => {
    const k = th.dataset.key; sortDir = (k === sortKey) ? -sortDir : 1; sortKey = k; renderTrials(last);
  });
}
function render(p){
  last = p;
  const s = p.sweep;
  document.title = "sweep " + s.id;
  document.getElementById("title").textContent = `sweep ${s.id}${s.name ? " · " + s.name : ""} (${s.method}, ${s.state})`;
  document.getElementById("status").innerHTML = esc(s.progress) + (s.reason ? "<br>" + esc(s.reason) : "")
    + (s.metric ? `<br>metric: ${esc(s.metric)} (${esc(s.goal)})` : "");
  document.getElementById("best").innerHTML = p.best
    ? `<div>trial ${p.best.trial} (${esc(p.best.state)}): ${esc(s.metric)} = ${num(p.best.value)}</div><pre>${esc(JSON.stringify(p.best.params, null, 2))}</pre>`
    : '<div class="empty">no trial has logged the metric yet</div>';
  document.getElementById("decisions").innerHTML = p.decisions.length
    ? "<table>" + p.decisions.map(d => `<tr><td>${d.trial}</td><td class="state-${esc(d.state)}">${esc(d.state)}</td><td>${esc(d.reason)}</td></tr>`).join("") + "</table>"
    : '<div class="empty">none yet</div>';
  plot("fig-parcoords", p.figures.parcoords);
  plot("fig-importance", p.figures.importance);
  plot("fig-curves", p.figures.curves);
  renderTrials(p);
  document.getElementById("config").textContent = p.config;
}
function live(url){
  // Only a failed fetch is caught: an error while rendering stays a console error.
  const tick = () => fetch(url, {cache: "no-store"}).then(r => r.json()).then(p => {
    setTimeout(tick, 2000);
    render(p);
    document.getElementById("live").textContent = "live: updated " + new Date().toLocaleTimeString();
  }, e => {
    document.getElementById("live").textContent = "dashboard server unreachable (" + e + "); retrying";
    setTimeout(tick, 2000);
  });
  tick();
}

/* Search excerpts from what a reader sees, not from the page's source text (course.sphinxext.readable).
 * Sphinx's search page fetches each result's HTML and shows the text around the match. Before MathJax runs, math is
 * TeX source ("\(\lfloor n/30 \rfloor\)"), and the text also holds the button bar's labels. This replaces
 * Search.htmlToText: math becomes plain symbols, the button bar and role markup ("{term}") are dropped. */
(() => {
  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", eta: "η", theta: "θ",
    lambda: "λ", mu: "μ", rho: "ρ", sigma: "σ", tau: "τ", nabla: "∇", sum: "Σ", prod: "Π", sqrt: "√",
    lfloor: "⌊", rfloor: "⌋", lceil: "⌈", rceil: "⌉", cdot: "·", times: "×", leftarrow: "←", rightarrow: "→",
    to: "→", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", approx: "≈", infty: "∞", pm: "±",
    log: "log", exp: "exp", min: "min", max: "max", lVert: "‖", rVert: "‖", Vert: "‖", ldots: "…", dots: "…",
  };
  const plainMath = (tex) => tex
    .replace(/^\\\(|\\\)$|^\\\[|\\\]$/g, "")
    .replace(/\\(?:text|mathrm|operatorname|mathbf|mathit)\{([^{}]*)\}/g, "$1")
    .replace(/\\([A-Za-z]+)/g, (all, name) => SYMBOLS[name] ?? "")
    .replace(/\\[,;:! ]/g, " ")
    .replace(/[{}]/g, "")
    .replace(/\s+/g, " ")
    .trim();

  const htmlToText = (htmlString, anchor) => {
    const html = new DOMParser().parseFromString(htmlString, "text/html");
    for (const query of [".headerlink", "script", "style", ".bd-header-article", ".prev-next-area",
                         "#jb-print-docs-body", ".bd-sidebar-secondary"]) {
      html.querySelectorAll(query).forEach((el) => el.remove());
    }
    html.querySelectorAll(".math").forEach((el) => { el.textContent = ` ${plainMath(el.textContent)} `; });
    const main = html.querySelector('[role="main"]');
    const block = (anchor && main && main.querySelector(anchor)) || main;
    if (!block) return "";
    return block.textContent.replace(/\{(?:term|ref|doc|download|numref|eq)\}/g, "").replace(/\s+/g, " ");
  };

  // searchtools.js declares `const Search`: a global binding, not a property of window.
  const install = () => { if (typeof Search !== "undefined") Search.htmlToText = htmlToText; };
  install();
  document.addEventListener("DOMContentLoaded", install);
})();

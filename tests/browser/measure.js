// Runs in the page once it is laid out (MathJax done): what overflows, and by how much.
// test_layout.py runs it as an asynchronous WebDriver script.
const done = arguments[arguments.length - 1];
(async () => {
  await pageStarted();
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(ok)));
  const vw = document.documentElement.clientWidth;
  const short = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    else if (el.classList.length) s += "." + [...el.classList].slice(0, 2).join(".");
    const text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return text ? `${s} "${text}"` : s;
  };
  // the page: wider than the screen? then the outermost elements that stick out
  // wider than the screen: a desktop browser scrolls sideways, a phone zooms out
  const pageWidth = document.documentElement.scrollWidth;
  let sticking = [];
  if (pageWidth > vw + 1) {
    // elements past the right edge that no scrolling or clipping box of theirs contains
    const clipped = el => {
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const cs = getComputedStyle(p);
        if (cs.position === "fixed") return true;
        if (cs.overflowX !== "visible" && p.getBoundingClientRect().right <= vw + 1) return true;
      }
      return false;
    };
    const out = [...document.querySelectorAll("body *")].filter(el => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > vw + 1 && getComputedStyle(el).position !== "fixed" && !clipped(el);
    });
    const set = new Set(out);
    // the innermost block that sticks out: its children that do are inline bits of it
    const culprits = out.filter(el => ![...el.children].some(c => set.has(c) && getComputedStyle(c).display !== "inline"));
    const seen = new Set();
    for (const el of culprits) {
      let block = el;
      while (block.parentElement && getComputedStyle(block).display === "inline") block = block.parentElement;
      if (seen.has(block)) continue;
      seen.add(block);
      const what = block === el ? "" : ` (its ${short(el)})`;
      sticking.push(`${short(block)}${what} reaches ${Math.round(el.getBoundingClientRect().right)} px`);
    }
    sticking = sticking.slice(0, 8);
  }
  // displayed equations
  const equations = [...document.querySelectorAll("mjx-container[display='true']")].map(c => {
    const box = c.closest("div.math") || c.parentElement;
    const number = box.querySelector(".eqno");
    const column = (c.closest("article, .bd-article, main") || document.body).getBoundingClientRect();
    const r = c.getBoundingClientRect();
    const ox = getComputedStyle(c).overflowX;
    // an equation without a label: name the API entry or the section it is in
    const owner = c.closest("dd") && c.closest("dd").previousElementSibling;
    const section = c.closest("section");
    const where = (owner && owner.id) || (section && section.id) || "";
    return {
      id: box.id || (where ? `in ${where}` : ""),
      number: number ? number.textContent.replace(/[#\s]/g, "") : "",
      width: c.scrollWidth, box: c.clientWidth,
      scrolls: ox === "auto" || ox === "scroll",
      outside: r.right > column.right + 1 || r.left < column.left - 1 || r.right > vw + 1,
    };
  });
  // code cells' inputs
  const code = [...document.querySelectorAll("div.cell_input pre, div.cell .cell_input pre")]
    .filter((p, i, a) => a.indexOf(p) === i)
    .map((p, i) => {
      const lines = p.textContent.split("\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      return {index: i, width: p.scrollWidth, box: p.clientWidth,
              chars: longest.length, line: longest.trim().slice(0, 70)};
    });
  // math contrast against the effective background
  const rgba = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
    }
    return [255, 255, 255];
  };
  const contrast = [...document.querySelectorAll("mjx-container")].slice(0, 60).map(c => {
    const glyph = c.querySelector("mjx-c") || c;
    const fg = rgba(getComputedStyle(glyph).color), bg = background(c);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return {ratio: (a + 0.05) / (b + 0.05), text: c.textContent.slice(0, 30)};
  });
  const text = document.querySelector("article") ? document.querySelector("article").innerText : "";
  done({vw, pageWidth, sticking, equations, code, contrast, text,
        height: document.documentElement.scrollHeight});
})().catch(e => done({error: String(e)}));

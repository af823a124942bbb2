// Loss Notes: small fixes that need the page's script (added by scripts/book_assets.py).
"use strict";

// An inline formula wider than the line it sits in scrolls inside its own box instead of
// being clipped or widening the page. MathJax cannot break inline math across lines, so
// once it has typeset the page, mark those formulas (lossnotes.css styles the mark).
function lossnotesMarkWideInlineMath() {
  for (const math of document.querySelectorAll("mjx-container:not([display='true'])")) {
    const line = math.closest("p, li, dd, dt, td, th, div, section");
    if (line && math.getBoundingClientRect().width > line.clientWidth + 1) {
      math.classList.add("lossnotes-wide-inline");
    }
  }
}
window.addEventListener("load", () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(lossnotesMarkWideInlineMath);
  }
});

// Search results: Sphinx builds each result's summary from the text of the page's
// [role=main] element, which in this theme starts with the toolbar (its ".ipynb" download
// entry) rather than the chapter. Take the text of the article alone.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  Search.htmlToText = (htmlString, anchor) => {
    const html = new DOMParser().parseFromString(htmlString, "text/html");
    for (const junk of html.querySelectorAll(
      ".headerlink, script, style, .bd-header-article, mjx-assistive-mml"
    )) junk.remove();
    const article = html.querySelector("article.bd-article") ||
      html.querySelector('[role="main"]');
    if (!article) return "";
    const target = anchor ? article.querySelector(anchor) : null;
    // the page as fetched is not typeset: drop MathJax's delimiters from the TeX
    return (target || article).textContent
      .replace(/\\[()[\]]/g, "")
      .replace(/\s+/g, " ")
      .trim();
  };
});

// Long inline code (an identifier with its arguments, a dotted path) may break after a dot,
// an opening bracket, a comma, "=" or "_" rather than overflow its line or table cell. The
// <wbr> marks are invisible and are not copied with the text.
document.addEventListener("DOMContentLoaded", () => {
  for (const span of document.querySelectorAll(".bd-article code.literal span.pre")) {
    const text = span.textContent;
    if (text.length < 16 || span.children.length) continue;
    const parts = text.split(/(?<=[.(,=_\/])/);
    if (parts.length < 2) continue;
    span.textContent = "";
    parts.forEach((part, i) => {
      if (i) span.appendChild(document.createElement("wbr"));
      span.appendChild(document.createTextNode(part));
    });
  }
});

// The landing page links to the PDF of the whole book once `make pdf` has built it: the
// build then writes _static/lossnotes-pdf.js, which names it (scripts/book_assets.py).
document.addEventListener("DOMContentLoaded", () => {
  if (!window.lossnotesPdf) return;
  for (const link of document.querySelectorAll("a[data-pdf]")) {
    link.href = link.dataset.pdf;
    link.closest(".lossnotes-pdf").hidden = false;
  }
});

// Prefixed to inspect.js and measure.js (tests/browser/builtbook.py joins them).
// A page that redirects (index.html) or is still loading: wait for its scripts, and for
// MathJax (a deferred script) to have started.
async function pageStarted() {
  if (document.readyState !== "complete") {
    await new Promise(ok => window.addEventListener("load", ok));
  }
  const mathjaxScript = document.querySelector("script[src*='mathjax']");
  for (let i = 0; i < 100 && mathjaxScript &&
       !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise(ok => setTimeout(ok, 100));
  }
}

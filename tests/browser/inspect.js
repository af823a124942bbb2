// Runs in the page once it has loaded: makes lazy images load, waits for them and for
// MathJax, then reports what a reader would see. test_browser.py runs it as an
// asynchronous WebDriver script.
const done = arguments[arguments.length - 1];
(async () => {
  await pageStarted();
  const images = [...document.images];
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.complete ? null : new Promise(ok => {
    img.addEventListener("load", ok); img.addEventListener("error", ok);
  })));
  let mathjax = null;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    mathjax = MathJax.version;
  }
  await document.fonts.ready;
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight, kbd";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let text = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && !node.parentElement.closest(skip)) text.push(node.textContent);
  }
  done({
    mathjax: mathjax,
    math_sources: document.querySelectorAll(".math").length,
    typeset: document.querySelectorAll("mjx-container").length,
    math_errors: [...document.querySelectorAll("mjx-merror")].map(e => e.textContent).slice(0, 5),
    text: text.join(" "),
    broken_images: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
    images: images.length,
    broken_fonts: [...document.fonts].filter(f => f.status === "error").map(f => f.family),
    resources: performance.getEntriesByType("resource").map(e => e.name),
    height: document.documentElement.scrollHeight,
  });
})().catch(e => done({error: String(e)}));

// Runs in the single-page book before printing (scripts/make_pdf.py): waits for MathJax
// and images, then lays the page out for paper: title page, contents, chapters on new
// pages. Its arguments: the book's title and subtitle.
const done = arguments[arguments.length - 1];
const [bookTitle, bookSubtitle] = arguments;
(async () => {
  document.documentElement.dataset.mode = "light";
  document.documentElement.dataset.theme = "light";
  const images = [...document.images];
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.complete ? null : new Promise(ok => {
    img.addEventListener("load", ok); img.addEventListener("error", ok);
  })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  const article = document.querySelector("article.bd-article") || document.body;
  // open every collapsed solution and hidden cell
  for (const d of document.querySelectorAll("details")) d.open = true;
  // the chapters: sections whose heading carries a chapter number ("2. ")
  const chapters = [];
  for (const h of article.querySelectorAll("section > h1, section > h2")) {
    const number = h.querySelector(".section-number");
    const title = h.textContent.replace(/#$/, "").replace(/^\s*[\d.]+\s*/, "").trim();
    const section = h.parentElement;
    const isChapter = number && /^\d+\.\s*$/.test(number.textContent);
    const isBackMatter = !number && section.previousElementSibling &&
      (section.previousElementSibling.id || "").startsWith("document-");
    if (isChapter || isBackMatter) {
      section.classList.add("pdf-chapter");
      chapters.push({id: section.id, number: isChapter ? number.textContent.trim() : "",
                     title});
    }
  }
  // title page and contents
  const front = document.createElement("section");
  front.className = "pdf-front";
  const toc = chapters.map(c =>
    `<li><a href="#${c.id}"><span class="pdf-toc-number">${c.number}</span>${c.title}</a></li>`
  ).join("");
  front.innerHTML = `<div class="pdf-title"><p class="pdf-book-title">${bookTitle}</p>
    <p>${bookSubtitle}</p></div>
    <nav class="pdf-toc"><h2>Contents</h2><ol>${toc}</ol></nav>`;
  article.prepend(front);
  done({chapters: chapters.map(c => `${c.number} ${c.title}`.trim()),
        typeset: document.querySelectorAll("mjx-container").length,
        errors: document.querySelectorAll("mjx-merror").length,
        broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)});
})().catch(e => done({error: String(e)}));

// Math for pymdownx.arithmatex (generic mode), rendered by the KaTeX copy kept in
// javascripts/katex/ (KaTeX 0.19.1 from the npm registry, MIT licence; woff2 fonts only), so
// the pages need no network. Arithmatex wraps inline math in \( \) and display math in \[ \].
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});

// Ask mode with JavaScript: stream the answer from POST /api/ask (server-sent events) as the answerer writes it.
// Without JavaScript the form is a plain GET and the server renders the whole answer. Text is only ever set with
// textContent, so transcript text stays inert here too.
(function () {
  var form = document.querySelector("form.search");
  var live = document.getElementById("live");
  if (!form || !live || !window.fetch || !window.TextDecoder || !window.ReadableStream) return;

  function fmt(seconds) {
    var s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function citation(c) {
    var li = document.createElement("li"), where = document.createElement("span"), quote = document.createElement("blockquote");
    where.className = "where";
    where.textContent = c.title + (c.speaker ? " · " + c.speaker : "");
    if (c.start !== null && c.start !== undefined) {
      var a = document.createElement("a");
      a.className = "time";
      a.textContent = fmt(c.start);
      a.href = /^https?:\/\//.test(c.link || "") ? c.link : "/source/" + encodeURIComponent(c.source) + "#t=" + Math.floor(c.start);
      where.appendChild(document.createTextNode(" · "));
      where.appendChild(a);
    }
    quote.textContent = c.quote;
    li.appendChild(where);
    li.appendChild(quote);
    return li;
  }

  form.addEventListener("submit", function (event) {
    var ask = form.querySelector("input[value=ask]");
    if (!ask || !ask.checked) return;
    event.preventDefault();
    var data = new FormData(form);
    var body = {q: data.get("q"), speaker: data.get("speaker") || null, source: data.get("source") || null};
    var text = live.querySelector(".text"), list = live.querySelector("ol.citations"), error = live.querySelector(".error");
    document.querySelectorAll("section.answer:not(#live), ol.hits").forEach(function (n) { n.remove(); });
    live.hidden = false;
    text.textContent = "";
    list.textContent = "";
    error.hidden = true;
    history.replaceState(null, "", "/?" + new URLSearchParams({q: body.q, mode: "ask"}).toString());
    fetch("/api/ask", {method: "POST", credentials: "same-origin",
                       headers: {"Content-Type": "application/json", "Accept": "text/event-stream"}, body: JSON.stringify(body)})
      .then(function (response) {
        var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
        function handle(block) {
          var kind = (block.match(/^event: (.*)$/m) || [])[1], raw = (block.match(/^data: (.*)$/m) || [])[1];
          if (!kind || raw === undefined) return;
          var payload = JSON.parse(raw);
          if (kind === "token") {
            text.textContent += payload;
          } else if (kind === "answer") {
            text.textContent = payload.text || "The corpus does not say.";
            (payload.citations || []).forEach(function (c) { list.appendChild(citation(c)); });
          } else if (kind === "error") {
            error.textContent = payload.error;
            error.hidden = false;
          }
        }
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buffer += decoder.decode(chunk.value, {stream: true});
            var blocks = buffer.split("\n\n");
            buffer = blocks.pop();
            blocks.forEach(handle);
            return pump();
          });
        }
        return pump();
      })
      .catch(function (e) { error.textContent = String(e); error.hidden = false; });
  });
})();

import ChatCore

/// The chat page every node serves at `GET /` (docs/protocol.md, "Web clients"): one
/// self-contained HTML document with its CSS and JavaScript inline, no external assets.
/// It speaks the WebSocket protocol of `/ws`. Every text from the network is put into the
/// page with `textContent`, never parsed as HTML. The Content-Security-Policy allows only
/// this page's own script and style (by hash), and connections back to the same host.
enum WebPage {
    static let style = """
        :root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.4; }
        body { margin: 0; }
        main { box-sizing: border-box; max-width: 42rem; margin: 0 auto; padding: 1rem;
               height: 100vh; height: 100dvh; display: flex; flex-direction: column; }
        h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
        label { display: block; margin: .6rem 0; }
        label input { display: block; width: 100%; box-sizing: border-box; margin-top: .2rem; }
        input, button { font: inherit; font-size: 1rem; padding: .5rem .7rem; border-radius: .4rem;
                        border: 1px solid #8889; }
        button { cursor: pointer; }
        :focus-visible { outline: 3px solid #3b82f6; outline-offset: 2px; }
        [hidden] { display: none !important; }
        #chat { flex: 1; min-height: 0; display: flex; flex-direction: column; }
        #bar { display: flex; align-items: center; gap: .5rem; }
        #where { flex: 1; font-weight: 600; overflow-wrap: anywhere; }
        #log { flex: 1; min-height: 6rem; overflow-y: auto; list-style: none; margin: .5rem 0; padding: .5rem;
               border: 1px solid #8886; border-radius: .4rem; }
        #log li { padding: .15rem .3rem; white-space: pre-wrap; overflow-wrap: anywhere; }
        #log .who { font-weight: 600; }
        #log .own { background: #3b82f622; border-radius: .3rem; }
        #log .notice { font-style: italic; opacity: .8; }
        .error { color: #c62828; }
        #say { display: flex; gap: .5rem; }
        #text { flex: 1; min-width: 0; }
        #lost { margin: .3rem 0; }
        """

    static let script = """
        "use strict";
        const $ = (id) => document.getElementById(id);
        const RULES = "Names use only letters (A-Z, a-z), digits and /: a username of 1 to 32 characters, a room of 1 to 64.";
        let ws = null, user = "", room = "", joined = false, leaving = false, refused = false;

        function status(text, isError) {
          $("status").textContent = text;
          $("status").className = isError ? "error" : "";
        }
        function showChat(on) {
          $("join").hidden = on;
          $("chat").hidden = !on;
          (on ? $("text") : $("user")).focus();
        }
        // Every text from the network goes in with textContent: it is never HTML.
        function add(text, kind) {
          const li = document.createElement("li");
          const sep = text.indexOf(" - ");
          if (kind === "msg" && sep > 0) {
            const who = document.createElement("span");
            who.className = "who";
            who.textContent = text.slice(0, sep);
            li.append(who, document.createTextNode(text.slice(sep)));
            if (text.slice(0, sep).toLowerCase() === user.toLowerCase()) li.classList.add("own");
          } else {
            li.textContent = text;
            li.className = kind;
          }
          $("log").append(li);
          li.scrollIntoView({ block: "end" });
        }
        function connect() {
          if (ws) return;
          joined = false; leaving = false; refused = false;
          status("Connecting…", false);
          $("lost").hidden = true;
          const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
          ws = socket;
          socket.onopen = () => socket.send(user + "_" + room);
          socket.onmessage = (ev) => {
            const t = String(ev.data);
            if (!joined) {
              if (t === "200") {
                joined = true;
                status("", false);
                $("where").textContent = user + " in " + room;
                add("You joined " + room + " as " + user + ".", "notice");
                showChat(true);
              } else if (t === "400") {
                refused = true;
                status("That username or room is not valid. " + RULES, true);
              } else if (t === "403") {
                refused = true;
                status("The name " + user + " is taken: someone using it is connected to the chat. Choose another name.", true);
              }
              return;
            }
            if (t === "/exit") add("The node is shutting down.", "notice");
            else if (t.startsWith("* ")) add(t.slice(2), "notice");
            else add(t, "msg");
          };
          socket.onclose = () => {
            ws = null;
            if (leaving) {
              showChat(false);
              status("You left " + room + ".", false);
            } else if (joined) {
              add("Connection lost.", "notice error");
              $("lost").hidden = false;
              $("retry").focus();
            } else if (!refused) {
              showChat(false);
              status("Could not reach the chat node. Check your connection and join again.", true);
            }
            joined = false;
          };
        }
        function leave() {
          if (ws && joined) { leaving = true; ws.send("/exit"); }
          else { if (ws) ws.close(); showChat(false); }
        }
        $("join").addEventListener("submit", (ev) => {
          ev.preventDefault();
          user = $("user").value.trim();
          room = $("room").value.trim();
          connect();
        });
        $("say").addEventListener("submit", (ev) => {
          ev.preventDefault();
          const text = $("text").value;
          if (!ws || !joined || text === "") return;
          if (text === "/exit") { leave(); } else { ws.send(text); }
          $("text").value = "";
        });
        $("leave").addEventListener("click", leave);
        $("retry").addEventListener("click", connect);
        $("user").focus();
        """

    static let body = """
        <main>
        <h1>tcp_chat</h1>
        <form id="join">
        <label>Username <input id="user" autocomplete="username" autocapitalize="off" spellcheck="false" required></label>
        <label>Room <input id="room" autocapitalize="off" spellcheck="false" required></label>
        <button type="submit">Join</button>
        <p id="status" role="status" aria-live="polite"></p>
        </form>
        <section id="chat" hidden aria-label="Chat">
        <div id="bar"><span id="where"></span><button id="leave" type="button">Leave</button></div>
        <ol id="log" aria-live="polite"></ol>
        <p id="lost" hidden><span class="error">The connection to the node was lost.</span>
        <button id="retry" type="button">Reconnect</button></p>
        <form id="say"><input id="text" aria-label="Message" autocomplete="off">
        <button type="submit">Send</button></form>
        </section>
        </main>
        """

    static var html: String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>tcp_chat</title>
        <style>\(style)</style>
        </head>
        <body>
        \(body)
        <script>\(script)</script>
        </body>
        </html>

        """
    }

    /// `default-src 'none'`: nothing but this page's own script and style and a
    /// WebSocket to the same host.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src \(HTTPResponse.cspHashSource(script)); " +
            "style-src \(HTTPResponse.cspHashSource(style)); connect-src 'self'; img-src 'none'; " +
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    /// The two answers to `GET /` and `HEAD /`, encoded once per node.
    struct Responses {
        let full: Payload
        let head: Payload
    }

    static func responses() -> Responses {
        let body = Array(html.utf8)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.count)\r\n" +
            "Content-Security-Policy: \(contentSecurityPolicy)\r\nX-Content-Type-Options: nosniff\r\n" +
            "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-cache\r\n" +
            "Connection: close\r\n\r\n"
        let headBytes = Array(head.utf8)
        return Responses(full: (headBytes + body).withUnsafeBytes { Payload.raw($0) },
                         head: headBytes.withUnsafeBytes { Payload.raw($0) })
    }
}

/* Gaveurs Trace: verify a product's record, and the recall notice shown for it, against the
 * signed Merkle log, in the browser.
 *
 * Reads the JSON embedded as <script id="ledger-proof"> ({record, proof}) by the scan page, and
 * <script id="recall-proof"> ({entries: [{kind, record, proof}]}) when a recall reaches the unit
 * (its declaration and, once closed, its closing are leaves of their own), and for each:
 * 1. rebuilds the canonical record (keys sorted, no whitespace, UTF-8) and its leaf hash
 *    SHA-256(0x00 || bytes);
 * 2. walks the audit path to the root (RFC 9162 §2.1.3.2), nodes SHA-256(0x01 || l || r);
 * 3. checks the Ed25519 signature of the tree head over the RFC 6962 TreeHeadSignature bytes
 *    (0x00, 0x01, uint64 timestamp ms, uint64 tree size, 32-byte root, big-endian).
 * WebCrypto only (crypto.subtle.digest / verify), no library. This proves the record has not
 * changed since it was sealed, not that it was true.
 */
(function () {
  "use strict";

  var block = document.getElementById("ledger-block");
  var dataEl = document.getElementById("ledger-proof");
  var recallEl = document.getElementById("recall-banner");
  var recallData = document.getElementById("recall-proof");
  var out = block && block.querySelector("[data-testid=ledger-result]");
  var details = block && block.querySelector("[data-ledger-details]");

  // The first-screen banner and the grade badge follow the verdict (templates/feedback/scan.html).
  var banner = document.getElementById("integrity-banner");
  var badge = document.querySelector("[data-testid=grade]");
  var badgeNote = document.querySelector("[data-testid=grade-unverified]");

  function showBanner(state) {
    // The server's finding stands; "pending" keeps the server's own words (head not signed yet).
    if (!banner || banner.dataset.state === "failed" || state === "pending") return;
    var key = state === "verified" ? "Verified" : state === "failed" ? "Failed" : "Unverified";
    banner.dataset.state = state === "verified" || state === "failed" ? state : "unverified";
    banner.textContent = banner.dataset["msg" + key];
    banner.className = "integrity notice " + (state === "failed" ? "warn" : state === "verified" ? "ok" : "neutral");
    if (badge) badge.dataset.verified = state === "verified" ? "yes" : "no";
    if (badgeNote) badgeNote.hidden = state === "verified";
  }

  function show(state, key, extra) {
    out.dataset.state = state;
    out.textContent = block.dataset["msg" + key] || key;
    out.className = state === "verified" ? "notice" : state === "failed" ? "notice warn" : "notice";
    if (extra && details) details.textContent = extra;
    if (state !== "checking") showBanner(state);
  }

  function hex(bytes) {
    return Array.prototype.map
      .call(bytes, function (b) { return b.toString(16).padStart(2, "0"); })
      .join("");
  }
  function unhex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }
  function unbase64(s) {
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function concat(parts) {
    var n = parts.reduce(function (a, p) { return a + p.length; }, 0);
    var buf = new Uint8Array(n);
    var at = 0;
    parts.forEach(function (p) { buf.set(p, at); at += p.length; });
    return buf;
  }
  async function sha256(parts) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(parts)));
  }
  function leafHash(data) { return sha256([Uint8Array.of(0), data]); }
  function nodeHash(l, r) { return sha256([Uint8Array.of(1), l, r]); }

  // Values are strings, integers, booleans, null or arrays of strings or integers; keys are
  // ASCII, so sort() is code-point order and JSON.stringify writes the same bytes as the server.
  function canonical(record) {
    return "{" + Object.keys(record).sort().map(function (k) {
      return JSON.stringify(k) + ":" + JSON.stringify(record[k]);
    }).join(",") + "}";
  }

  // RFC 9162 §2.1.3.2: the root the path leads to, or null when the path does not fit the size.
  async function rootFromPath(index, size, leaf, path) {
    if (index >= size) return null;
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < path.length; i++) {
      var p = path[i];
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  function headMessage(head) {
    var buf = new Uint8Array(50);
    var view = new DataView(buf.buffer);
    view.setUint8(0, 0);
    view.setUint8(1, 1);
    view.setBigUint64(2, BigInt(head.timestamp));
    view.setBigUint64(10, BigInt(head.tree_size));
    buf.set(unhex(head.root_hash), 18);
    return buf;
  }

  async function verifySignature(head) {
    var key = await crypto.subtle.importKey(
      "raw", unbase64(head.public_key), { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify(
      { name: "Ed25519" }, key, unbase64(head.signature), headMessage(head));
  }

  // One entry's verdict: [state, message key, facts].
  async function verifyEntry(record, proof) {
    proof = proof || {};
    if (proof.status !== "sealed") return ["pending", "Pending", ""];
    if (!window.crypto || !crypto.subtle) return ["unsupported", "Unsupported", ""];
    var head = proof.signed_head;
    var leaf = await leafHash(new TextEncoder().encode(canonical(record)));
    var root = await rootFromPath(
      proof.leaf_index, proof.tree_size, leaf, proof.audit_path.map(unhex));
    var facts = "leaf " + hex(leaf) + " · tree " + head.tree_size + " · root " +
      head.root_hash + " · key " + head.key_id + " · " + head.timestamp_iso;
    var signatureOk;
    try {
      signatureOk = await verifySignature(head);
    } catch (e) {
      return ["unsupported", "Unsupported", facts];
    }
    if (hex(leaf) !== proof.leaf_hash) {
      return ["failed", "RecordChanged", facts + " · sealed leaf " + proof.leaf_hash];
    } else if (!root || hex(root) !== head.root_hash || head.tree_size !== proof.tree_size) {
      return ["failed", "PathFailed", facts];
    } else if (!signatureOk) {
      return ["failed", "SignatureFailed", facts];
    }
    return ["verified", "Verified", facts];
  }

  async function run() {
    var data = JSON.parse(dataEl.textContent);
    var verdict = await verifyEntry(data.record, data.proof);
    show(verdict[0], verdict[1], verdict[2]);
  }

  // The recall notice is verified when every entry shown (declaration, closing) is.
  async function runRecall() {
    var recallOut = recallEl.querySelector("[data-testid=recall-ledger-result]");
    function showRecall(state, facts) {
      recallOut.dataset.state = state;
      var key = state.charAt(0).toUpperCase() + state.slice(1);
      recallOut.textContent = recallEl.dataset["msg" + key] || state;
      if (facts) recallOut.title = facts;
    }
    try {
      var entries = JSON.parse(recallData.textContent).entries || [];
      var state = entries.length ? "verified" : "error", facts = [];
      for (var i = 0; i < entries.length; i++) {
        var verdict = await verifyEntry(entries[i].record, entries[i].proof);
        facts.push(entries[i].kind + ": " + verdict[2]);
        if (verdict[0] !== "verified" && state !== "failed") state = verdict[0];
      }
      showRecall(state, facts.join(" | "));
    } catch (e) {
      showRecall("error", String(e));
    }
  }

  if (recallEl && recallData) runRecall();
  if (!block || !dataEl) return;
  show("checking", "Checking");
  run().catch(function (e) { show("error", "Error", String(e)); });
})();

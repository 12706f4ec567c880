/**
 * The page an invitation URL opens: a form for the password, which its script posts as JSON to
 * the accept route with the invitation's secret from the URL's fragment (the server never sees
 * the fragment in a request line, so it stays out of logs). Minimal on purpose: the web UI
 * restyles it.
 */
import { MIN_PASSWORD_LENGTH, Routes } from '@ferry/protocol';

export function invitationPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>Join Ferry</title></head>
<body>
<h1>Join Ferry</h1>
<p id="who">Checking the invitation…</p>
<form id="form" hidden>
<label>Password (at least ${MIN_PASSWORD_LENGTH} characters)<br><input id="password" type="password" autocomplete="new-password" minlength="${MIN_PASSWORD_LENGTH}" required></label><br>
<label>Again<br><input id="again" type="password" autocomplete="new-password" required></label><br>
<button type="submit">Set password and join</button>
</form>
<p id="result" role="status"></p>
<script>
const secret = decodeURIComponent(location.hash.slice(1));
const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  .then(async (r) => ({ ok: r.ok, json: await r.json() }));
const show = (id, text) => { document.getElementById(id).textContent = text; };
post(${JSON.stringify(Routes.getInvitation.path)}, { invitation: secret }).then(({ ok, json }) => {
  if (!ok) return show('who', json.message);
  show('who', 'Set a password for ' + json.email + ' (' + json.role + ' of ' + json.org + ').');
  document.getElementById('form').hidden = false;
});
document.getElementById('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const password = document.getElementById('password').value;
  if (password !== document.getElementById('again').value) return show('result', 'The two passwords differ.');
  post(${JSON.stringify(Routes.acceptInvitation.path)}, { invitation: secret, password }).then(({ ok, json }) => {
    if (!ok) return show('result', json.message);
    document.getElementById('form').hidden = true;
    show('result', 'Welcome, ' + json.email + '. Sign in with: ferry login --server ' + location.origin + ' --email ' + json.email);
  });
});
</script>
</body></html>
`;
}

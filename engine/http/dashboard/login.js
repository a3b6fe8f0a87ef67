// The login page: shows why the last login failed (POST /login redirects with ?error=...).
const error = new URLSearchParams(location.search).get("error");
const messages = {
  "unknown-key": "That is not an API key of this engine.",
  "no-api-key": "This engine has no API key configured: start it with DURABLE_API_KEY set.",
};
if (error) {
  const p = document.getElementById("error");
  p.textContent = messages[error] || "Log in failed.";
  p.hidden = false;
}

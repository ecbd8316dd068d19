// Sign-in rules shared by login.js and announce.js.

// DEMO ONLY: whoever types this code at sign-in gets the "admin" role. It is
// here so the demo can show a role-gated channel without an identity provider.
// A real app checks a password or an SSO claim instead; never ship a code in
// the page or the repository.
const DEMO_ADMIN_CODE = 'demo-admin';

const NAME = /^[A-Za-z0-9 _-]{1,32}$/;

function cleanName(value) {
  if (typeof value !== 'string') return null;
  const name = value.trim();
  return NAME.test(name) ? name : null;
}

// A token's role claim is a string or a list of strings.
function hasRole(user, role) {
  if (!user) return false;
  const roles = Array.isArray(user.role) ? user.role : [user.role];
  return roles.includes(role);
}

function isAdminCode(code) {
  return code === DEMO_ADMIN_CODE;
}

module.exports = { isAdminCode, cleanName, hasRole };

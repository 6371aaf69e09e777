// Package ui serves the web dashboard from every node: the files of ui/assets/ embedded
// in the binary (AssetServer: ETag revalidation, gzip, a strict Content-Security-Policy,
// never framed), browser sessions (Sessions: a random HttpOnly cookie mapping, server
// side, to the token the browser logged in with; one-time login codes for
// `constellation ui`), and the Front that stands before the API listeners: it serves
// /ui/ without a token, turns a session cookie into the bearer token it stands for so the
// API's authenticator and permission table judge the request as they judge the token, and
// refuses a cookie-authenticated mutating request without the session's CSRF token
// (X-CSRF-Token) or from another origin.
//
// Routes (Register): POST /ui/login, GET /ui/session, POST /ui/logout. See docs/ui.md.
package ui

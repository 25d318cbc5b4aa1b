// The API reference page (/docs): Scalar's standalone build, served by heatbill itself, reading
// the server's own OpenAPI document. No fonts, proxy or telemetry from the internet: the page
// works on a machine with no network beyond the server.
Scalar.createApiReference('#app', {
  url: '/openapi.json',
  withDefaultFonts: false,
  telemetry: false,
  hideClientButton: false,
});

/* SegmentLens: plotly.js comes with the page, as a deferred script in its head (dashboard/security.py,
   load_plotly_early), so it downloads next to Dash's scripts and is compiled while the page's layout and
   first callbacks travel (issue 29: a cold Overview in 2 s). dcc.Graph loads plotly.js itself when its
   first chart arrives unless window.Plotly is there; until the deferred script has run, window.Plotly is a
   promise of it, which dcc.Graph waits for (Promise.resolve adopts it) instead of loading plotly.js again.
   The script replaces the promise with the real Plotly when it runs. */
(function () {
  "use strict";
  var early = document.querySelector("script[data-plotly-early]");
  if (!early || window.Plotly) {
    return;
  }
  window.Plotly = new Promise(function (resolve, reject) {
    early.addEventListener("load", function () { resolve(); });
    early.addEventListener("error", function () {
      // The early copy could not be had: load plotly.js as dcc.Graph would have.
      delete window.Plotly;
      var again = document.createElement("script");
      again.src = window._dashPlotlyJSURL || early.src;
      again.onload = function () { resolve(); };
      again.onerror = reject;
      document.body.appendChild(again);
    });
  });
})();

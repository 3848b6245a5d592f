"""Every page at desktop (1400 px) and phone (400 px) width: no sideways scroll, no share/cloud button,
no raw column names in chart text (issue 14).

The checks run in the accessibility test's loop (tests/test_browser_a11y.py), which already loads every page
at both widths in one browser: each page is loaded once, measured here (before axe opens any "view as table"),
then checked by axe-core."""
import json
import re
import time

# Page -> charts it draws on load (waited for before anything is measured).
PAGES = {"/": 2, "/profiles": 5, "/compare": 4, "/explorer": 1, "/diagnostics": 2, "/stability": 7, "/predict": 1,
         "/data": 0, "/eda": 4, "/campaigns": 2, "/monitoring": 1, "/value": 0}
WIDTHS = [1400, 400]
RAW = ["NumWebPurchases", "NumStorePurchases", "NumCatalogPurchases", "NumDealsPurchases", "NumWebVisitsMonth",
       "Total_Spending", "Total_Children", "Total_Purchases", "Customer_since", "Campaigns_Accepted", "MntWines",
       "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds", "Z_CostContact",
       "Z_Revenue", "Kidhome", "Teenhome", "Year_Birth", "Dt_Customer", "Marital_Status", "AcceptedCmp"]
# plotly.js 3's "Share chart..." (sendChartToCloud) and plotly.js 2's "Edit in Chart Studio" (sendDataToCloud).
CLOUD = ('[data-title^="Share chart"], [aria-label^="Share chart"], [data-title*="Chart Studio"], '
         '[data-title*="Cloud"], [data-attr="sendDataToCloud"], [data-val="sendDataToCloud"], .modebar-btn--logo, '
         'a[href*="chart-studio"], a[href*="plot.ly"]')

_CHARTS_DRAWN = """
const content = document.querySelector('#_pages_content');
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
const loading = document.querySelectorAll('[data-dash-is-loading="true"]');
return content !== null && content.innerText.trim().length > 0 && loading.length === 0
    && plots.filter(p => p.querySelector('.main-svg') !== null).length >= arguments[0];
"""
# The page's extent and every chart's box beside the size Plotly laid it out at: a chart still being resized (or
# redrawn by a late callback) has a box that differs from its layout, or a reading that changes between polls.
_LAYOUT_STATE = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => {
    const r = p.getBoundingClientRect(), full = p._fullLayout;
    return [Math.round(r.width), Math.round(r.height), full ? Math.round(full.width) : null,
            full ? Math.round(full.height) : null];
});
return JSON.stringify({width: window.innerWidth, scroll: document.documentElement.scrollWidth,
                       height: document.documentElement.scrollHeight, plots: plots,
                       drawn: plots.every(([w, h, fw, fh]) => fw !== null && Math.abs(w - fw) <= 1
                                                              && Math.abs(h - fh) <= 1)});
"""
_WIDEST = """
const limit = window.innerWidth;
const wide = Array.from(document.querySelectorAll('body *')).filter(e => {
    const r = e.getBoundingClientRect();
    return r.right > limit + 1 && r.width > 0 && getComputedStyle(e).position !== 'fixed';
}).filter(e => !e.closest('.graph-scroll, .table-responsive, .overflow-auto'));
return wide.slice(0, 3).map(e => (e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' +
    String(e.className && e.className.baseVal !== undefined ? e.className.baseVal : e.className)
        .split(' ').join('.')) + ' (' + Math.round(e.getBoundingClientRect().right) + ' px)');
"""


def wait_settled(br, *, polls: int = 3, interval: float = 0.1, timeout: float = 10.0) -> None:
    """Wait until the page's layout has settled: every chart drawn at the size of its box, and the page's and
    the charts' sizes the same at ``polls`` readings ``interval`` s apart (responsive charts resize to the final
    width after their first drawing). Fails when that does not happen within ``timeout`` s.

    Use after the page's charts are drawn (``_CHARTS_DRAWN``), before the layout is measured."""
    deadline = time.monotonic() + timeout
    same, last = 0, None
    while True:
        state = br.driver.execute_script(_LAYOUT_STATE)
        same = same + 1 if state == last and json.loads(state)["drawn"] else 0
        if same >= polls - 1:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the page's layout did not settle within {timeout} s: {state}")
        last = state
        time.sleep(interval)


def layout_problems(br) -> list[str]:
    """What is wrong with the page the browser shows, at its current width (empty when it is right).

    Call once the page's charts are drawn (``_CHARTS_DRAWN``) and have settled to the final width (``wait_settled``).
    """
    out = []
    scroll, inner = br.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];")
    if scroll > inner:
        out.append(f"scrolls sideways ({scroll} > {inner} px); widest: {br.driver.execute_script(_WIDEST)}")
    cloud = br.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.outerHTML.slice(0, 80));", CLOUD)
    if cloud:
        out.append(f"share/cloud/logo button in the DOM: {cloud[:2]}")
    text = br.driver.execute_script(
        "return Array.from(document.querySelectorAll('.main-svg')).map(e => e.textContent).join(' ');")
    raw = sorted({name for name in RAW if re.search(rf"{name}", text)})
    if raw:
        out.append(f"raw column names in chart text: {raw}")
    return out

#!/usr/bin/python3
"""Drives the dashboard in headless Chromium through the DevTools protocol (CDP).

usage: dashboard_browser.py PAGE_URL TOKEN OUT_DIR INSTRUCTIONS

With DASHBOARD_PANELS=1 it only reads an operator's panels (stats, providers) and prints them.
Opens PAGE_URL with ?token=TOKEN added (an operator's page may name the user to watch: /?user=ID), waits for the event socket to be live, types INSTRUCTIONS into the
canvas-generation form and clicks Submit like a user, then watches the page: a screenshot while the
job runs (with objects drawn), another once it completed. Prints one JSON document of what the page
showed (the Swift test asserts on it); exits 1 with the reason on stderr when the page never got there.
"""
import asyncio
import base64
import json
import os
import sys

from cdp import Page, chromium_page


class DashboardPage(Page):
    async def screenshot(self, path):
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(path, "wb") as file:
            file.write(base64.b64decode(shot["data"]))
        return path

    async def click(self, selector):
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


# Pixels an object put on the canvas: dark strokes and text, or coloured fills. The empty canvas is
# white with a light grey hint, which counts as neither.
DRAWN_PIXELS = """(() => {
  const c = document.getElementById('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (Math.max(r, g, b) < 90 || Math.max(r, g, b) - Math.min(r, g, b) > 40) n++;
  }
  return n;
})()"""

SELECTED_JOB = "document.querySelector('#jobs li.selected')"


async def check_reconnect(page):
    """Drops the socket, submits a job while the page is offline, and checks that the page came back
    by itself with `since`: the job's events from before the reconnect (job.queued first) arrive."""
    job_id = await page.evaluate(
        "(async () => { const {state, api} = dashboard; const shown = document.getElementById('connection');"
        # Every state the page shows from here on (a loaded machine may pass one before a poll sees it).
        " window.connectionStates = []; new MutationObserver(() => { const s = shown.dataset.state;"
        " if (window.connectionStates.at(-1) !== s) window.connectionStates.push(s); }).observe(shown, {attributeFilter: ['data-state']});"
        " state.genflow.socket.close(4000, 'test: drop');"
        " const r = await api('POST', '/v1/jobs', {pipeline: 'canvas-generation', input: {instructions: 'a boat'}, user_id: state.operator ? state.user : undefined});"
        " return r.job.id; })()")
    await page.wait_for("document.getElementById('connection').dataset.state === 'live'", "the page to reconnect", timeout=20)
    states = await page.evaluate("window.connectionStates")
    types = await page.wait_for(
        f"(j => j && j.events.some(e => e.type === 'job.completed') && j.events.map(e => e.type))(dashboard.state.jobs.get({json.dumps(job_id)}))",
        "the job submitted while offline to complete on the page", timeout=60)
    return {"job_id": job_id, "states": states, "event_types": types,
            "url": await page.evaluate("dashboard.state.genflow.socket.url.replace(/token=[^&]*/, 'token=…')")}


async def drive(base, token, out, instructions):
    async with chromium_page(page_class=DashboardPage) as page:
        await page.call("Page.navigate", url=f"{base}{'&' if '?' in base else '?'}token={token}")
        await page.wait_for(
            "document.getElementById('connection').dataset.state === 'live'"
            " && document.querySelectorAll('#pipeline option').length > 0"
            " && /^-?\\d+$/.test(document.getElementById('balance').textContent)",
            "the page to sign in, load the pipelines and the balance, and go live")
        if os.environ.get("DASHBOARD_PANELS"):
            # An operator's panels only: what the stats and providers tables show.
            try:
                await page.wait_for("document.querySelectorAll('#providers tr').length > 1 && document.querySelector('#stats dd') !== null",
                                    "the operator panels", timeout=20)
            except TimeoutError:
                seen = await page.evaluate("JSON.stringify({operator: dashboard.state.operator, providers: document.getElementById('providers')?.outerHTML, stats: document.getElementById('stats')?.innerHTML?.slice(0, 300), plugins: document.getElementById('plugins')?.outerHTML?.slice(0, 200)})")
                raise TimeoutError(f"no operator panels: {seen}")
            print(json.dumps({
                "providers": await page.evaluate("[...document.querySelectorAll('#providers tr')].slice(1).map(r => [...r.children].map(c => c.textContent.trim()))"),
                "cost": await page.evaluate("document.querySelector('#stats dd[data-stat=cost]')?.textContent ?? null"),
                "screenshot": await page.screenshot(os.path.join(out, "dashboard-operator.png")),
            }))
            return
        before = int(await page.evaluate("document.getElementById('balance').textContent"))
        url_after_sign_in = await page.evaluate("location.href")

        # Choose the pipeline, then type the instructions and click Submit as a user would.
        await page.evaluate(
            f"(() => {{ const s = document.getElementById('pipeline'); s.value = {json.dumps(os.environ.get('DASHBOARD_PIPELINE', 'canvas-generation'))};"
            " s.dispatchEvent(new Event('change')); })()")
        await page.evaluate("document.querySelector('#fields [name=instructions]').focus()")
        await page.call("Input.insertText", text=instructions)
        earlier = await page.evaluate(f"{SELECTED_JOB}?.dataset.jobId ?? ''")
        await page.click("#submit")

        job_id = await page.wait_for(
            f"(id => id && id !== {json.dumps(earlier)} && id)({SELECTED_JOB}?.dataset.jobId)", "the submitted job, selected in the list", timeout=20)
        shots = []
        # What follows is seen only while the job runs: each wait also ends when the job has ended
        # (a quick job on a busy machine may end before the page shows it running).
        ended = f"['completed', 'failed', 'cancelled'].includes({SELECTED_JOB}?.dataset.status)"
        # Steps shown with a progress bar while the job runs (each running branch has one).
        step_bars = await page.wait_for(
            f"(n => n > 0 ? n : ({ended} && -1))(document.querySelectorAll('#steps tr[data-step] .progress').length)",
            "a running step's progress bar in the steps table, or the job's end", timeout=30)
        if step_bars < 0:
            step_bars = 0
            print("no step progress bar seen: the job ended first", file=sys.stderr)
        running = await page.wait_for(
            f"(['running', 'waiting_retry'].includes({SELECTED_JOB}?.dataset.status)"
            f" && document.querySelector('#jobs li.selected .progress') && Number(document.getElementById('canvas').dataset.objects) >= 3"
            f" && 'running') || ({ended} && 'ended')",
            "the job running with objects drawn, or its end", timeout=30)
        if running == "running":
            shots.append(await page.screenshot(os.path.join(out, "dashboard-running.png")))
        else:
            print("no mid-job screenshot: the job ended first", file=sys.stderr)
        status = await page.wait_for(
            f"(s => ['completed', 'failed', 'cancelled'].includes(s) && s)({SELECTED_JOB}?.dataset.status)",
            "the job to end", timeout=90)
        # The balance changes with token_balance_updated, which comes before job.completed.
        await page.wait_for(f"document.getElementById('balance').textContent !== '{before}'", "the balance to change", timeout=10)
        await page.wait_for("document.querySelectorAll('#steps tr').length > 1", "the steps table", timeout=10)
        await asyncio.sleep(0.3)
        shots.append(await page.screenshot(os.path.join(out, "dashboard-completed.png")))
        report = {
            "job_id": job_id,
            "status": status,
            "balance_before": before,
            "balance_after": int(await page.evaluate("document.getElementById('balance').textContent")),
            "balance_change_shown": await page.evaluate("document.getElementById('balance-change').textContent"),
            "drawn_pixels": await page.evaluate(DRAWN_PIXELS),
            "steps_shown": await page.evaluate("[...document.querySelectorAll('#steps tr[data-step]')].map(r => r.dataset.step)"),
            "levels_shown": await page.evaluate("[...document.querySelectorAll('#steps tr.level')].map(r => r.textContent)"),
            "step_bars_seen": step_bars,
            "connection": await page.evaluate("document.getElementById('connection').dataset.state"),
            "token_in_address_bar": "token=" in await page.evaluate("location.href") or "token=" in url_after_sign_in,
            "screenshots": shots,
        }
        if os.environ.get("DASHBOARD_PIPELINE", "canvas-generation") == "canvas-generation":
            report["reconnect"] = await check_reconnect(page)
        print(json.dumps(report))


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    base, token, out, instructions = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    try:
        asyncio.run(drive(base, token, out, instructions))
    except Exception as error:  # noqa: BLE001 - the reason goes to the test's failure message
        print(f"dashboard_browser: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

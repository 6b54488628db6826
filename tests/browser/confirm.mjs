// Signs in to Gantry, opens the workspaces page, opens a run waiting for confirmation, clicks
// "Confirm & apply" and watches the log follow until the run is applied. A screenshot of each
// page goes to the screenshots directory.
//
// node confirm.mjs BASE_URL TOKEN RUN_ID SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, token, runId, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/`);
  // Not signed in: the sign-in page.
  await page.waitForSelector("text=Sign in to Gantry");
  await page.screenshot({ path: `${shots}/sign-in.png`, fullPage: true });
  await page.fill("#token", token);
  await page.click("button[type=submit]");

  await page.waitForSelector("h1:has-text('Workspaces')");
  await page.screenshot({ path: `${shots}/workspaces.png`, fullPage: true });
  await page.click("a:has-text('prod')");
  await page.waitForSelector("h2:has-text('Queue')");
  await page.screenshot({ path: `${shots}/workspace.png`, fullPage: true });

  await page.goto(`${base}/runs/${runId}`);
  await page.waitForSelector("#run-state:has-text('planned')");
  await page.screenshot({ path: `${shots}/run-planned.png`, fullPage: true });
  await page.click("button:has-text('Confirm & apply')");
  // The apply log follows live; when the phase ends the page shows the final state.
  await page.waitForSelector("#run-state:has-text('applied')", { timeout: 60000 });
  await page.waitForSelector("pre.log[data-phase=apply]:has-text('Apply complete')");
  await page.screenshot({ path: `${shots}/run-applied.png`, fullPage: true });

  // On a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/`);
  await page.screenshot({ path: `${shots}/workspaces-phone.png`, fullPage: true });
  console.log("browser test passed");
} finally {
  await browser.close();
}

// Signs in to Gantry, opens the workspaces page, opens a run waiting for confirmation, clicks
// "Confirm & apply" and watches the log follow until the run is applied. A screenshot of each
// page goes to the screenshots directory, and each page must pass axe-core's WCAG 2 A and AA
// rules (labels, contrast, landmarks, names of buttons and links).
//
// node confirm.mjs BASE_URL TOKEN RUN_ID SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

// Fails with every WCAG 2 A/AA violation axe-core finds on the page as it is now.
async function checkAccessibility(page, name) {
  await page.addScriptTag({ path: axePath });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    });
    return result.violations.map((v) => ({
      rule: v.id,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
  });
  if (violations.length > 0) {
    throw new Error(`${name} fails the accessibility check:\n${JSON.stringify(violations, null, 2)}`);
  }
}

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
  await checkAccessibility(page, "the sign-in page");
  await page.fill("#token", token);
  await page.click("button[type=submit]");

  await page.waitForSelector("h1:has-text('Workspaces')");
  await page.screenshot({ path: `${shots}/workspaces.png`, fullPage: true });
  await checkAccessibility(page, "the workspaces page");
  await page.click("a:has-text('prod')");
  await page.waitForSelector("h2:has-text('Queue')");
  await page.screenshot({ path: `${shots}/workspace.png`, fullPage: true });
  await checkAccessibility(page, "the workspace page");

  await page.goto(`${base}/runs/${runId}`);
  await page.waitForSelector("#run-state:has-text('planned')");
  await page.screenshot({ path: `${shots}/run-planned.png`, fullPage: true });
  await checkAccessibility(page, "a planned run's page");
  await page.click("button:has-text('Confirm & apply')");
  // The apply log follows live; when the phase ends the page shows the final state.
  await page.waitForSelector("#run-state:has-text('applied')", { timeout: 60000 });
  await page.waitForSelector("pre.log[data-phase=apply]:has-text('Apply complete')");
  await page.screenshot({ path: `${shots}/run-applied.png`, fullPage: true });
  await checkAccessibility(page, "an applied run's page");

  // On a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/`);
  await page.screenshot({ path: `${shots}/workspaces-phone.png`, fullPage: true });
  await checkAccessibility(page, "the workspaces page on a phone");
  await page.goto(`${base}/runs/${runId}`);
  await page.screenshot({ path: `${shots}/run-phone.png`, fullPage: true });
  await checkAccessibility(page, "a run's page on a phone");
  // Nothing wider than the screen: no sideways scrolling on a phone.
  for (const path of ["/", "/workspaces/prod", `/runs/${runId}`]) {
    await page.goto(`${base}${path}`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) throw new Error(`${path} is ${width}px wide on a 390px phone`);
  }
  console.log("browser test passed");
} finally {
  await browser.close();
}

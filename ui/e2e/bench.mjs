// Benchmark: the pipeline board with 2,000 work items in the system's Chromium. Ingests
// 2,000 events (one item each, spread over the three stages) into a fresh `cfactory
// serve`, then prints how long the board takes to show its first card and all 2,000,
// and the frame times while every column scrolls. It prints figures and asserts nothing.

import { randomUUID } from 'node:crypto';
import { ingest, launchBrowser, preflight, startServer, tempDataDir } from './harness.mjs';

const ITEMS = 2000;
const SCROLL_FRAMES = 240;

const STAGES = [
  { service: 'pfactory', status: 'awaiting_approval', phase: 'plan', task: (i) => `s-${i}` },
  { service: 'aifactory', status: 'in_progress', phase: 'coding', task: (i) => `proj:${i}` },
  { service: 'tfactory', status: 'executing', phase: 'test', task: (i) => `spec-${i}` },
];

function events() {
  const start = Date.now() - ITEMS * 1000;
  return Array.from({ length: ITEMS }, (_, i) => {
    const s = STAGES[i % 3];
    return {
      id: randomUUID(),
      specversion: '1.0',
      source: `/${s.service}`,
      type: `io.factory.${s.service}.completion`,
      time: new Date(start + i * 1000).toISOString(),
      correlation_key: String(10_000 + i),
      service: s.service,
      task_id: s.task(i),
      status: s.status,
      phase: s.phase,
      title: `Benchmark work item ${i}`,
      repo: 'bench/board',
    };
  });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(50), p95: at(95), max: s[s.length - 1] };
};

async function main() {
  preflight();
  const data = tempDataDir();
  const server = await startServer({ command: 'serve', dataDir: data.dir, args: ['--poll-interval-seconds', '0'] });
  const browser = await launchBrowser();
  try {
    const all = events();
    for (let i = 0; i < all.length; i += 500) await ingest(server.api, all.slice(i, i + 500));
    console.log(`bench: ingested ${ITEMS} work items into ${server.api}`);

    const runs = [];
    for (let run = 0; run < 3; run++) {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      // Marks, in the page's own clock (ms since navigation start), when the first card
      // appears and when the column counts reach every item.
      await page.addInitScript((total) => {
        window.__marks = {};
        const check = () => {
          if (!window.__marks.firstCard && document.querySelector('.card')) window.__marks.firstCard = performance.now();
          const n = [...document.querySelectorAll('.column-head .count')].reduce((a, el) => a + Number(el.textContent.replace(/\D/g, '') || 0), 0);
          if (n >= total && !window.__marks.full) window.__marks.full = performance.now();
          if (!window.__marks.full) requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
      }, ITEMS);
      await page.goto(`${server.ui}/pipeline`);
      await page.waitForFunction(() => window.__marks.full, null, { timeout: 60_000 });
      const marks = await page.evaluate(() => window.__marks);
      const rendered = await page.locator('.vrow').count();

      // Scroll every column together, a steady step per frame, and record frame gaps.
      const frames = await page.evaluate(async (count) => {
        const lists = [...document.querySelectorAll('.vlist')];
        const gaps = [];
        let last = performance.now();
        for (let f = 0; f < count; f++) {
          await new Promise((r) => requestAnimationFrame(r));
          const now = performance.now();
          gaps.push(now - last);
          last = now;
          for (const l of lists) l.scrollTop += 240;
        }
        return gaps.slice(1);
      }, SCROLL_FRAMES);
      runs.push({ marks, rendered, frames });
      await page.close();
    }

    for (const [i, r] of runs.entries()) {
      const f = stats(r.frames);
      const janky = r.frames.filter((g) => g > 25).length;
      console.log(
        `bench: run ${i + 1}: first card ${r.marks.firstCard.toFixed(0)} ms, all ${ITEMS} items on the board ${r.marks.full.toFixed(0)} ms ` +
          `(${r.rendered} card rows in the DOM); scroll frames mean ${f.mean.toFixed(1)} ms, p50 ${f.p50.toFixed(1)}, p95 ${f.p95.toFixed(1)}, max ${f.max.toFixed(1)}, ` +
          `${janky} of ${r.frames.length} over 25 ms`,
      );
    }
  } finally {
    await browser.close();
    await server.stop();
    data.cleanup();
  }
}

main().catch((e) => {
  console.error(`bench: FAIL: ${e?.stack ?? e}`);
  process.exitCode = 1;
});

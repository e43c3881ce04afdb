/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// In development the cockpit talks to the API server (default 127.0.0.1:3111) through
// this proxy, WebSocket included; in production `cfactory` serves ui/dist and the API
// from one origin. CFACTORY_API overrides the target.
const api = process.env.CFACTORY_API ?? 'http://127.0.0.1:3111';
// The server refuses a browser whose Origin is not its own address (the WebSocket and
// cookie-authenticated writes), so proxied requests carry the target's origin.
const apiOrigin = new URL(api).origin;

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': {
        target: api,
        ws: true,
        changeOrigin: true,
        configure: (proxy) => {
          proxy.on('proxyReq', (req) => {
            if (req.getHeader('origin')) req.setHeader('origin', apiOrigin);
          });
          proxy.on('proxyReqWs', (req) => req.setHeader('origin', apiOrigin));
        },
      },
    },
  },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 400,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}', 'scripts/**/*.test.mjs'],
    setupFiles: ['./src/test-setup.ts'],
  },
});

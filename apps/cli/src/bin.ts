import { runHanmadi } from './main.js';

process.exitCode = await runHanmadi(process.argv.slice(2));

#!/usr/bin/env node
import { runExportCli } from './export-command.js';

process.exitCode = await runExportCli(process.argv.slice(2));

#!/usr/bin/env node
// The installed command. `env node` runs whatever Node is first on the PATH,
// which may be older than mcrelay supports (package.json "engines"), and an
// old Node fails in odd places (a syntax error, a missing API) or, worse, runs
// with different behaviour. So this file checks the version first and only
// then loads the CLI.
//
// It is CommonJS in ES5 syntax (bin/package.json) so that any Node can parse
// it and print the message; the CLI is ES modules, loaded with import(),
// through Function so that a Node without import() gets this far.
'use strict';
var path = require('path');
var engines = require('../package.json').engines.node;

function tooOld(range, version) {
  var need = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range);
  if (need === null) return false;
  var have = version.split('.');
  for (var i = 0; i < 3; i++) {
    var h = Number(have[i] || 0);
    var n = Number(need[i + 1] || 0);
    if (h !== n) return h < n;
  }
  return false;
}

if (tooOld(engines, process.versions.node)) {
  process.stderr.write('mcrelay: needs Node ' + engines + '; ' + process.execPath + ' is Node ' + process.versions.node +
    '. Install a supported Node, or run mcrelay with one: /path/to/node ' + __filename + ' ...\n');
  // 2, as a configuration error: restarting cannot fix it (the unit file does not retry it).
  process.exit(2);
}

var cli = require('url').pathToFileURL(path.join(__dirname, '..', 'dist', 'src', 'cli.js')).href;
new Function('url', 'return import(url)')(cli);

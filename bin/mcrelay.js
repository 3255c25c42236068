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

function compare(a, b) {
  for (var i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

function parts(v) {
  var p = v.split('.');
  return [Number(p[0] || 0), Number(p[1] || 0), Number(p[2] || 0)];
}

// The range lists the tested lines (^22.12.0 || ^24.0.0 ...); only a Node below
// the lowest of them is refused. A newer Node, on a line not tested yet, is let
// run: it fails far less often than an old one. A range of another form is not
// checked at all.
function tooOld(range, version) {
  var floor = null;
  var alternatives = range.split('||');
  for (var i = 0; i < alternatives.length; i++) {
    var need = /^(?:>=|\^)\s*(\d+(?:\.\d+){0,2})$/.exec(alternatives[i].trim());
    if (need === null) return false;
    var v = parts(need[1]);
    if (floor === null || compare(v, floor) < 0) floor = v;
  }
  return compare(parts(version), floor) < 0;
}

if (tooOld(engines, process.versions.node)) {
  process.stderr.write('mcrelay: needs Node ' + engines + '; ' + process.execPath + ' is Node ' + process.versions.node +
    '. Install a supported Node, or run mcrelay with one: /path/to/node ' + __filename + ' ...\n');
  // 2, as a configuration error: restarting cannot fix it (the unit file does not retry it).
  process.exit(2);
}

var cli = require('url').pathToFileURL(path.join(__dirname, '..', 'dist', 'src', 'cli.js')).href;
new Function('url', 'return import(url)')(cli);

// sia imaging: a SMART on FHIR standalone launch (fhirclient, authorization code + PKCE)
// that shows the patient's imaging studies and opens one in the OHIF viewer.
//
//   /app/                 a Launch button against the EHR in `iss` (default: sia's dev EHR)
//   /app/?iss=URL         launches at once against that EHR
//   /app/#study=UID       after the launch: that one study (refused unless it is the patient's)
//
// The access token stays in this tab (fhirclient keeps it in sessionStorage) and only
// ever travels in Authorization headers. The viewer gets the study's capability address
// (the contained Endpoint of the ImagingStudy), in the page fragment, which no server sees.
(function () {
  'use strict';

  var CLIENT_ID = 'sia-imaging-app';
  var SCOPE = 'launch/patient patient/Patient.rs patient/ImagingStudy.rs';
  var ISS_KEY = 'sia.app.iss';

  var $ = function (id) { return document.getElementById(id); };
  var appUrl = new URL('.', window.location.href);
  var defaultIss = new URL('../dev/fhir', appUrl).href;
  var viewerBase = new URL('../viewer/', appUrl).href;

  function text(el, s) { el.textContent = s == null ? '' : String(s); return el; }

  function show(id, on) { $(id).hidden = !on; }

  // A message a person can act on; `action` is {label, run}.
  function message(kind, msg, action) {
    var box = $('message');
    box.className = 'message' + (kind === 'error' ? ' error' : '');
    box.dataset.kind = kind;
    box.replaceChildren();
    box.appendChild(document.createTextNode(msg + ' '));
    if (action) {
      var b = document.createElement('button');
      b.type = 'button';
      b.id = 'message-action';
      text(b, action.label);
      b.addEventListener('click', action.run);
      box.appendChild(b);
    }
    box.hidden = false;
  }

  function clearMessage() { $('message').hidden = true; }

  function launch(iss) {
    try { window.sessionStorage.setItem(ISS_KEY, iss); } catch (e) { /* private mode */ }
    return FHIR.oauth2.authorize({
      iss: iss,
      clientId: CLIENT_ID,
      scope: SCOPE,
      redirectUri: appUrl.pathname,
      pkceMode: 'required'
    });
  }

  function launchAgain() {
    var iss = window.sessionStorage.getItem(ISS_KEY) || defaultIss;
    // Forget the old session before starting a new one.
    Object.keys(window.sessionStorage).forEach(function (k) {
      if (k !== ISS_KEY) { window.sessionStorage.removeItem(k); }
    });
    launch(iss);
  }

  function showLaunch(err) {
    show('launch', true);
    var params = new URLSearchParams(window.location.search);
    $('iss').value = params.get('iss') || window.sessionStorage.getItem(ISS_KEY) || defaultIss;
    $('launch-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      launch($('iss').value.trim());
    });
    if (err) {
      message('error', 'The launch did not complete: ' + err.message + '.', { label: 'Launch again', run: launchAgain });
    }
  }

  // A fetch with the access token; 401 and 403 become errors the page explains.
  function authorizedFetch(client, url) {
    return fetch(url, {
      headers: { Authorization: client.getAuthorizationHeader(), Accept: 'application/fhir+json' }
    }).then(function (r) {
      if (r.ok) { return r.json(); }
      var err = new Error(url + ': HTTP ' + r.status);
      err.status = r.status;
      throw err;
    });
  }

  function explain(err) {
    if (err.status === 401) {
      message('expired', 'Your session has expired or is no longer valid. Launch again to sign in.',
        { label: 'Launch again', run: launchAgain });
    } else if (err.status === 403) {
      message('forbidden', "This study is not in your patient's record: the imaging server refused it (403).");
    } else if (err.status === 404) {
      message('error', 'No such study on the imaging server (404).');
    } else {
      message('error', 'Something went wrong: ' + err.message);
    }
  }

  function personName(p) {
    var n = (p.name || [])[0] || {};
    if (n.text) { return n.text; }
    return [].concat(n.prefix || [], n.given || [], n.family || [], n.suffix || []).join(' ') || p.id;
  }

  function banner(patient) {
    var b = $('patient-banner');
    b.replaceChildren();
    var add = function (cls, s) {
      var span = document.createElement('span');
      span.className = cls;
      b.appendChild(text(span, s));
    };
    add('name', personName(patient));
    var mrn = (patient.identifier || [])[0];
    add('mrn', 'ID ' + (mrn ? mrn.value : patient.id));
    if (patient.birthDate) { add('birth', 'born ' + patient.birthDate); }
    if (patient.gender) { add('gender', patient.gender); }
    var change = document.createElement('button');
    change.type = 'button';
    change.id = 'change-patient';
    text(change, 'Change patient');
    change.addEventListener('click', launchAgain);
    b.appendChild(change);
    b.dataset.patient = patient.id;
    b.hidden = false;
  }

  // The imaging server: the EHR's associated endpoint for SMART Imaging Access, else
  // `?imaging=`, else this server's /fhir.
  function imagingBase(client) {
    var fallback = new URLSearchParams(window.location.search).get('imaging') ||
      new URL('../fhir', appUrl).href;
    var iss = client.state.serverUrl.replace(/\/$/, '');
    return fetch(iss + '/.well-known/smart-configuration')
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (conf) {
        var ep = (conf.associated_endpoints || []).filter(function (e) {
          return (e.capabilities || []).indexOf('smart-imaging-access') >= 0;
        })[0];
        return (ep ? ep.url : fallback).replace(/\/$/, '');
      }, function () { return fallback.replace(/\/$/, ''); });
  }

  function studyUid(study) {
    var id = (study.identifier || []).filter(function (i) { return i.system === 'urn:dicom:uid'; })[0];
    return id ? id.value.replace(/^urn:oid:/, '') : study.id;
  }

  function accession(study) {
    var id = (study.identifier || []).filter(function (i) {
      return ((i.type || {}).coding || []).some(function (c) { return c.code === 'ACSN'; });
    })[0];
    return id ? id.value : '';
  }

  // The DICOMweb address the viewer may use without a token: the study's contained
  // Endpoint when it does not require one (a capability URL), else null.
  function viewerAddress(study) {
    var ref = ((study.endpoint || [])[0] || {}).reference || '';
    if (ref.charAt(0) !== '#') { return null; }
    var ep = (study.contained || []).filter(function (c) { return '#' + c.id === ref; })[0];
    if (!ep) { return null; }
    var needsToken = (ep.extension || []).some(function (x) {
      return /requires-access-token$/.test(x.url) && x.valueBoolean === true;
    });
    return needsToken ? null : ep.address;
  }

  function viewerUrl(study) {
    var address = viewerAddress(study);
    if (!address) { return null; }
    return viewerBase + 'viewer?StudyInstanceUIDs=' + encodeURIComponent(studyUid(study)) +
      '#dicomweb=' + encodeURIComponent(address);
  }

  function studyRow(study) {
    var tr = document.createElement('tr');
    tr.dataset.study = studyUid(study);
    var cell = function (s, cls) {
      var td = document.createElement('td');
      if (cls) { td.className = cls; }
      tr.appendChild(text(td, s));
      return td;
    };
    cell((study.started || '').slice(0, 10), 'date');
    cell((study.modality || []).map(function (m) { return m.code; }).join(', '), 'modality');
    cell(study.description || '', 'description');
    cell(study.numberOfSeries, 'num series');
    cell(study.numberOfInstances, 'num instances');
    cell(accession(study), 'accession');
    var td = cell('', 'open');
    var url = viewerUrl(study);
    if (url) {
      var a = document.createElement('a');
      a.className = 'button open-study';
      a.href = url;
      text(a, 'Open');
      td.appendChild(a);
    } else {
      text(td, 'no viewer address');
      td.title = 'The imaging server gave no capability address for this study ([capabilities] enabled = true)';
    }
    return tr;
  }

  function showStudies(studies) {
    var body = $('study-table').querySelector('tbody');
    body.replaceChildren();
    studies.sort(function (a, b) { return (b.started || '').localeCompare(a.started || ''); });
    studies.forEach(function (s) { body.appendChild(studyRow(s)); });
    show('no-studies', studies.length === 0);
    show('studies', true);
  }

  // Every page of ImagingStudy?patient=.
  function searchStudies(client, url, found) {
    return authorizedFetch(client, url).then(function (bundle) {
      (bundle.entry || []).forEach(function (e) {
        if (e.resource && e.resource.resourceType === 'ImagingStudy') { found.push(e.resource); }
      });
      var next = (bundle.link || []).filter(function (l) { return l.relation === 'next'; })[0];
      return next ? searchStudies(client, next.url, found) : found;
    });
  }

  // `#study=UID`: that one study, read with the patient's token.
  function showOneStudy(client, imaging, uid) {
    clearMessage();
    return authorizedFetch(client, imaging + '/ImagingStudy/' + encodeURIComponent(uid))
      .then(function (study) { showStudies([study]); })
      .catch(function (err) {
        show('studies', false);
        $('study-table').querySelector('tbody').replaceChildren();
        explain(err);
      });
  }

  function run(client) {
    show('launch', false);
    if (client.state.expiresAt && client.state.expiresAt * 1000 < Date.now()) {
      var expired = new Error('expired');
      expired.status = 401;
      explain(expired);
      return;
    }
    var patientId = client.patient.id;
    if (!patientId) {
      message('error', 'The EHR gave no patient: launch again and choose one.', { label: 'Launch again', run: launchAgain });
      return;
    }
    var iss = client.state.serverUrl.replace(/\/$/, '');
    authorizedFetch(client, iss + '/Patient/' + encodeURIComponent(patientId))
      .then(function (patient) {
        banner(patient);
        return imagingBase(client);
      })
      .then(function (imaging) {
        var route = function () {
          var m = /^#study=(.+)$/.exec(window.location.hash);
          if (m) { return showOneStudy(client, imaging, decodeURIComponent(m[1])); }
          clearMessage();
          return searchStudies(client, imaging + '/ImagingStudy?patient=' +
            encodeURIComponent('Patient/' + patientId) + '&_count=100', []).then(showStudies);
        };
        window.addEventListener('hashchange', function () { route().catch(explain); });
        return route();
      })
      .catch(explain);
  }

  if (typeof FHIR === 'undefined') {
    message('error', 'SMART\'s JavaScript client (fhirclient) is not served at lib/fhir-client.min.js: ' +
      'run scripts/web-deps and give sia serve --app-lib .cache/web/fhirclient.');
    return;
  }
  var params = new URLSearchParams(window.location.search);
  var returning = params.has('code') || params.has('error') || params.has('state');
  var hasSession = false;
  try { hasSession = !!window.sessionStorage.getItem('SMART_KEY'); } catch (e) { /* none */ }
  if (params.has('error')) {
    showLaunch(new Error(params.get('error_description') || params.get('error')));
  } else if (returning || hasSession) {
    FHIR.oauth2.ready().then(run, function (err) { showLaunch(err); });
  } else if (params.get('iss')) {
    launch(params.get('iss'));
  } else {
    showLaunch(null);
  }
}());

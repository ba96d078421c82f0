/*
 * Live updates of a user task page (no build step, no dependency).
 *
 * The page is complete without this script.  With it, the page polls the task's JSON
 * snapshot with If-None-Match (the server answers 304 while nothing changed), updates the
 * state, progress, stage, attempts, children and results in place, cancels without a
 * reload, and stops polling once the task is final.  Every text it shows comes translated
 * from the server.
 */
(function () {
  'use strict';

  var root = document.getElementById('ut-task');
  if (!root || !window.fetch) {
    return;
  }

  var MAX_INTERVAL = 5000;
  var baseInterval = parseInt(root.getAttribute('data-poll-interval'), 10) || 1000;
  var interval = baseInterval;
  var pollUrl = root.getAttribute('data-poll-url');
  var etag = root.getAttribute('data-etag') || '';
  var stopped = root.getAttribute('data-final') === 'true';
  var timer = null;
  var fragments = {};
  // Whether the keyboard focus was on the Cancel button when it was pressed (a disabled
  // button loses focus, so this is remembered before disabling it).
  var focusOnCancel = false;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var element = byId(id);
    // Only real changes: a live region re-announces whatever is written to it.
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function setStateClass(element, stateClass) {
    element.className = element.className.replace(/\but-state-[\w-]+/g, '').trim() + ' ut-state-' + stateClass;
  }

  function setFragment(id, html) {
    var element = byId(id);
    if (element && typeof html === 'string' && fragments[id] !== html) {
      fragments[id] = html;
      element.innerHTML = html;
    }
  }

  function apply(task) {
    setText('ut-name', task.name);
    setText('ut-state', task.state_text);
    setStateClass(byId('ut-state'), task.state_class);
    setStateClass(root, task.state_class);
    setText('ut-stage', task.stage);
    byId('ut-stage-row').hidden = !task.stage;
    setText('ut-attempts', String(task.attempts));
    var progress = byId('ut-progress');
    progress.value = task.percent;
    progress.textContent = task.percent + '%';
    setText('ut-percent', task.percent_text);
    setText('ut-steps', task.steps_text);
    setText('ut-eta-text', task.eta_text);
    byId('ut-eta').hidden = !task.eta_text;
    if (task.fragments) {
      setFragment('ut-artifacts', task.fragments.artifacts);
      setFragment('ut-children', task.fragments.children);
      if (byId('ut-retry')) {
        setFragment('ut-retry', task.fragments.retry);
      }
      byId('ut-children').hidden = !task.is_container;
    }
    var form = byId('ut-cancel-form');
    if (form && !task.cancelable) {
      var hadFocus = focusOnCancel || form.contains(document.activeElement);
      form.parentNode.removeChild(form);
      if (hadFocus) {
        // Keep keyboard users on the page, at the state that now tells what happened.
        byId('ut-state').setAttribute('tabindex', '-1');
        byId('ut-state').focus();
      }
    }
    document.title = task.name;
    root.setAttribute('data-final', task.final ? 'true' : 'false');
    if (task.final) {
      stop();
    }
  }

  function stop() {
    stopped = true;
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
  }

  function schedule() {
    if (!stopped) {
      timer = window.setTimeout(poll, interval);
    }
  }

  function remember(response) {
    var tag = response.headers.get('ETag');
    if (tag) {
      etag = tag;
    }
  }

  function isJson(response) {
    return (response.headers.get('Content-Type') || '').indexOf('application/json') === 0;
  }

  function poll() {
    timer = null;
    if (stopped) {
      return;
    }
    if (document.hidden) {
      // Nobody is looking: check again when the page is visible.
      document.addEventListener('visibilitychange', function resume() {
        document.removeEventListener('visibilitychange', resume);
        poll();
      });
      return;
    }
    var headers = {'Accept': 'application/json'};
    if (etag) {
      headers['If-None-Match'] = etag;
    }
    fetch(pollUrl, {headers: headers, credentials: 'same-origin', cache: 'no-store'})
      .then(function (response) {
        if (response.status === 304) {
          // Unchanged: ask less often, up to MAX_INTERVAL.
          interval = Math.min(MAX_INTERVAL, Math.round(interval * 1.25));
          return null;
        }
        if (!response.ok || !isJson(response)) {
          // Logged out, or the task is gone or no longer visible: the page stays as it is.
          stop();
          return null;
        }
        interval = baseInterval;
        remember(response);
        return response.json();
      })
      .then(function (task) {
        if (task) {
          apply(task);
        }
      })
      .catch(function () {
        interval = Math.min(MAX_INTERVAL, interval * 2);
      })
      .then(schedule);
  }

  function csrfToken(form) {
    var field = form.querySelector('input[name="csrfmiddlewaretoken"]');
    return field ? field.value : '';
  }

  var cancelForm = byId('ut-cancel-form');
  if (cancelForm) {
    cancelForm.addEventListener('submit', function (event) {
      event.preventDefault();
      var button = byId('ut-cancel');
      focusOnCancel = cancelForm.contains(document.activeElement);
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      fetch(cancelForm.action, {
        method: 'POST',
        body: new FormData(cancelForm),
        headers: {'Accept': 'application/json', 'X-CSRFToken': csrfToken(cancelForm)},
        credentials: 'same-origin',
      }).then(function (response) {
        if (!response.ok || !isJson(response)) {
          throw new Error(String(response.status));
        }
        remember(response);
        return response.json();
      }).then(apply).catch(function () {
        // Fall back to the plain form post, which reloads the page with the outcome.
        cancelForm.submit();
      });
    });
  }

  schedule();
}());

// reborn taint webhook for Zabbix (6.0 and later): turns a trigger's problem event into a
// taint on a reborn node (parameter `node`: the alert's "Send to" by default).
//
// Parameters (media type): reborn_url, auth_mode (hmac | bearer), secret, node, reason,
// severity (the trigger's {EVENT.NSEVERITY}), event_value, event_id, trigger_id, host,
// min_severity, source.
//
// Only problem events (event_value = 1) at or above min_severity are sent; recoveries and
// updates do nothing (a taint is cleared by the replacement, or by `reborn untaint`).

var Reborn = {
    // Zabbix severities 0..5 → reborn severities.
    SEVERITY: ['info', 'info', 'warning', 'warning', 'critical', 'critical'],

    severity: function (nseverity) {
        var n = parseInt(nseverity, 10);
        if (isNaN(n) || n < 0 || n > 5) {
            return 'warning';
        }
        return Reborn.SEVERITY[n];
    },

    body: function (params) {
        return JSON.stringify({
            node: params.node,
            reason: params.reason,
            severity: Reborn.severity(params.severity),
            source: params.source || 'zabbix',
            details: {
                eventId: params.event_id,
                triggerId: params.trigger_id,
                host: params.host,
                zabbixSeverity: params.severity
            }
        });
    },

    send: function (params) {
        var body = Reborn.body(params),
            url = params.reborn_url.replace(/\/+$/, '') + '/v1/hooks/taint',
            request = new HttpRequest(),
            response;

        request.addHeader('Content-Type: application/json');
        if (params.auth_mode === 'bearer') {
            request.addHeader('Authorization: Bearer ' + params.secret);
        }
        else {
            // HMAC-SHA256 over "<timestamp>.<body>"; the timestamp is in the MAC, so a
            // captured request cannot be replayed later.
            var ts = Math.floor(Date.now() / 1000).toString();
            request.addHeader('X-Reborn-Timestamp: ' + ts);
            request.addHeader('X-Reborn-Signature: sha256=' + hmac('sha256', params.secret, ts + '.' + body));
        }
        if (typeof params.http_proxy === 'string' && params.http_proxy.trim() !== '') {
            request.setProxy(params.http_proxy);
        }

        Zabbix.log(4, '[ reborn webhook ] tainting node ' + params.node);
        response = request.post(url, body);
        var status = request.getStatus();
        if (status !== 200) {
            var message = 'HTTP ' + status;
            try {
                message += ': ' + JSON.parse(response).error;
            }
            catch (e) {
                // not JSON: keep the status only
            }
            throw 'reborn refused the taint (' + message + ')';
        }
        return JSON.parse(response);
    }
};

try {
    var params = JSON.parse(value);

    ['reborn_url', 'secret', 'node', 'reason'].forEach(function (field) {
        if (typeof params[field] !== 'string' || params[field].trim() === '' || params[field].indexOf('{') === 0) {
            throw 'parameter "' + field + '" is not set';
        }
    });

    if (params.event_value !== '1') {
        Zabbix.log(4, '[ reborn webhook ] not a problem event; nothing to do');
        return 'OK';
    }
    var min = parseInt(params.min_severity || '0', 10);
    if (parseInt(params.severity, 10) < min) {
        Zabbix.log(4, '[ reborn webhook ] severity below min_severity; nothing to do');
        return 'OK';
    }

    var result = Reborn.send(params);
    return JSON.stringify({
        tags: {
            __reborn_taint_id: String(result.taint.id),
            __reborn_taint_created: String(result.created)
        }
    });
}
catch (error) {
    Zabbix.log(3, '[ reborn webhook ] failed: ' + error);
    throw 'reborn webhook failed: ' + error;
}

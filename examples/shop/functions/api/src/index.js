'use strict';

// Layers: shared (node packages), then reporting (settings at /opt/config).
const fs = require('fs');
const { formatMoney } = require('@shop/money');

const SETTINGS = '/opt/config/settings.json';

exports.handler = async (event) => {
  const settings = JSON.parse(fs.readFileSync(SETTINGS, 'utf8'));
  const cents = Number((event && event.cents) || 0);
  return {
    statusCode: 200,
    body: JSON.stringify({ total: formatMoney(cents, settings.currency) }),
  };
};

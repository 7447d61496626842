#!/usr/bin/env node
// An independent client of the loyalty service: Node.js with @grpc/grpc-js and
// @grpc/proto-loader, loading the contract straight from protos/ (no generated code).
// It sends one receipt to ReceiptService.Calculate and prints the result as JSON on stdout.
//
//   node tools/node-client/calculate.js --target 127.0.0.1:50051 --token "$LOYALTY_TOKEN" \
//       --receipt service/demo_data/demo_receipt.json [--google-protos DIR] [--timeout 10]
//
// The receipt file is the JSON the Python tools read (clients/receipt_format.py): receipt_id,
// store_id, channel (POS/ONLINE), card or member_id, lines [{line_id, sku, quantity, price,
// amount}]. --google-protos names a directory holding google/protobuf/timestamp.proto (for
// example grpcio-tools' _proto directory); without it, protobufjs' own copy of the
// well-known types is used. Exit status 0 on success; on a failed call 1, with
// {"code": ..., "details": ...} on stderr.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const REPO = path.resolve(__dirname, "..", "..");

function parseArgs(argv) {
  const args = {
    target: "127.0.0.1:50051",
    token: process.env.LOYALTY_TOKEN || "",
    receipt: path.join(REPO, "service", "demo_data", "demo_receipt.json"),
    protos: path.join(REPO, "protos"),
    googleProtos: "",
    timeout: 10,
  };
  const names = {
    "--target": "target",
    "--token": "token",
    "--receipt": "receipt",
    "--protos": "protos",
    "--google-protos": "googleProtos",
    "--timeout": "timeout",
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      throw new Error(`usage: calculate.js [${Object.keys(names).join(" X] [")} X]`);
    }
    args[key] = argv[i + 1];
  }
  args.timeout = Number(args.timeout);
  return args;
}

function loadReceiptService(protos, googleProtos) {
  const includeDirs = [protos];
  if (googleProtos) includeDirs.push(googleProtos);
  const definition = protoLoader.loadSync(path.join(protos, "loyalty", "v1", "receipt.proto"), {
    includeDirs,
    keepCase: true, // field names as in the .proto (snake_case)
    longs: String, // int64 as decimal strings: no precision lost
    enums: String, // enum values by name
    defaults: true, // unset scalars as their zero values
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).loyalty.v1.ReceiptService;
}

function receiptFromJson(data) {
  const receipt = {
    receipt_id: String(data.receipt_id || `NODE-${Date.now()}`),
    store_id: String(data.store_id || ""),
    channel: `CHANNEL_${data.channel || "POS"}`,
    lines: (data.lines || []).map((line, index) => {
      const quantity = BigInt(line.quantity ?? 1000);
      const price = BigInt(line.price);
      const amount =
        line.amount !== undefined ? BigInt(line.amount) : (price * quantity + 500n) / 1000n;
      return {
        line_id: String(line.line_id ?? index + 1),
        sku: String(line.sku),
        quantity: quantity.toString(),
        price: price.toString(),
        amount: amount.toString(),
      };
    }),
  };
  const card = data.card_number || data.card;
  if (card) receipt.member = { card_number: String(card) };
  else if (data.member_id) receipt.member = { member_id: String(data.member_id) };
  return receipt;
}

function summary(result) {
  return {
    receipt_id: result.receipt_id,
    member_id: result.member_id,
    currency: result.currency,
    total_amount: result.total_amount,
    total_discount: result.total_discount,
    total_paid: result.total_paid,
    total_points: result.total_points,
    unknown_skus: result.unknown_skus,
    lines: result.lines.map((line) => ({
      line_id: line.line_id,
      sku: line.sku,
      amount: line.amount,
      discount: line.discount,
      paid: line.paid,
      points: line.points,
      known_sku: line.known_sku,
      benefits: line.benefits.map((b) => ({
        offer_id: b.offer_id,
        mechanic: b.mechanic,
        kind: b.kind,
        discount: b.discount,
        points: b.points,
        text: b.text,
      })),
    })),
  };
}

function main() {
  const args = parseArgs(process.argv);
  const ReceiptService = loadReceiptService(args.protos, args.googleProtos);
  const client = new ReceiptService(args.target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (args.token) metadata.set("authorization", `Bearer ${args.token}`);
  const receipt = receiptFromJson(JSON.parse(fs.readFileSync(args.receipt, "utf8")));
  const deadline = new Date(Date.now() + args.timeout * 1000);
  client.Calculate({ receipt, explain: false }, metadata, { deadline }, (err, response) => {
    client.close();
    if (err) {
      const code = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code);
      process.stderr.write(JSON.stringify({ code, details: err.details }) + "\n");
      process.exitCode = 1;
      return;
    }
    process.stdout.write(JSON.stringify(summary(response.result), null, 1) + "\n");
  });
}

main();

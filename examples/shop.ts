// The demo domain: orders are event-sourced (appended through the GraphQL appendEvents
// mutation), products live in an ordinary table captured by CDC, and one projection joins both.
import { defineProjection, defineView, type Envelope, type ViewContext } from 'tributary';

export const products = defineView({
  name: 'products',
  description: 'The product catalogue, as captured from the public.products table.',
  columns: {
    id: { type: 'integer' },
    name: { type: 'text', nullable: false },
    price: { type: 'numeric', nullable: false },
    stock: { type: 'integer', nullable: false },
  },
  primaryKey: ['id'],
  // What the productSearch sink of tributary.config.ts indexes.
  search: { fields: ['name'] },
});

export const orderLines = defineView({
  name: 'order_lines',
  description: 'One row per order, joined with its product (name and current price).',
  columns: {
    order_id: { type: 'text' },
    customer: { type: 'text', nullable: false },
    product_id: { type: 'integer', nullable: false },
    product_name: { type: 'text' },
    quantity: { type: 'integer', nullable: false },
    unit_price: { type: 'numeric' },
    total: { type: 'numeric' },
    status: { type: 'text', nullable: false },
    placed_at: { type: 'timestamptz', nullable: false },
  },
  primaryKey: ['order_id'],
  indexes: [{ columns: ['status', 'placed_at'] }, { columns: ['product_id'] }],
});

export const productSales = defineView({
  name: 'product_sales',
  description: 'Units and revenue per product over orders not cancelled.',
  columns: {
    product_id: { type: 'integer' },
    product_name: { type: 'text' },
    orders: { type: 'integer', nullable: false },
    units: { type: 'integer', nullable: false },
    revenue: { type: 'numeric', nullable: false },
  },
  primaryKey: ['product_id'],
});

type Data = Record<string, unknown>;
const money = (value: number) => value.toFixed(2);

async function addSale(
  ctx: ViewContext,
  productId: number,
  name: string | null,
  units: number,
  revenue: number,
) {
  const row = await ctx.get(productSales, { product_id: productId });
  await ctx.upsert(productSales, {
    product_id: productId,
    product_name: name ?? row?.product_name ?? null,
    orders: (row?.orders ?? 0) + Math.sign(units),
    units: (row?.units ?? 0) + units,
    revenue: money(Number(row?.revenue ?? 0) + revenue),
  });
}

async function onProduct(event: Envelope, ctx: ViewContext) {
  if (event.type.endsWith('.truncate')) return;
  const { after, key } = event.data as { after: Data | null; key: Data };
  const id = Number(key.id ?? after?.id);
  if (event.type.endsWith('.delete') || after === null) {
    await ctx.delete(products, { id });
    return;
  }
  const name = String(after.name);
  const price = String(after.price);
  await ctx.upsert(products, { id, name, price, stock: Number(after.stock) });
  // The join: open orders follow the product's current name and price.
  for (const line of await ctx.find(orderLines, { product_id: id, status: 'placed' })) {
    await ctx.patch(
      orderLines,
      { order_id: line.order_id },
      { product_name: name, unit_price: price, total: money(Number(price) * line.quantity) },
    );
  }
  const sales = await ctx.get(productSales, { product_id: id });
  if (sales) await ctx.patch(productSales, { product_id: id }, { product_name: name });
}

async function onOrder(event: Envelope, ctx: ViewContext) {
  const data = event.data as Data;
  const orderId = String(data.orderId);
  if (event.type === 'OrderPlaced') {
    // An order is placed once: seeing it again (a replay) changes nothing, and its sale is not
    // counted twice. This guard is what makes the projection safe to replay.
    if (await ctx.get(orderLines, { order_id: orderId })) return;
    const productId = Number(data.productId);
    const quantity = Number(data.quantity);
    const product = await ctx.get(products, { id: productId });
    const total = product ? Number(product.price) * quantity : null;
    await ctx.upsert(orderLines, {
      order_id: orderId,
      customer: String(data.customer),
      product_id: productId,
      product_name: product?.name ?? null,
      quantity,
      unit_price: product?.price ?? null,
      total: total === null ? null : money(total),
      status: 'placed',
      placed_at: event.eventTime,
    });
    await addSale(ctx, productId, product?.name ?? null, quantity, total ?? 0);
    return;
  }
  const line = await ctx.get(orderLines, { order_id: orderId });
  if (line?.status !== 'placed') return;
  const status = event.type === 'OrderShipped' ? 'shipped' : 'cancelled';
  await ctx.patch(orderLines, { order_id: orderId }, { status });
  if (status === 'cancelled') {
    await addSale(ctx, line.product_id, null, -line.quantity, -Number(line.total ?? 0));
  }
}

export const shop = defineProjection({
  name: 'shop',
  version: 1,
  views: [products, orderLines, productSales],
  filter: { typePrefixes: ['Order', 'public.products.'] },
  // Re-delivered events leave the views as they are: an order already recorded is skipped, a
  // shipment or cancellation applies only to a placed order, products are upserts of their row.
  replay: 'idempotent',
  async handle(event, ctx) {
    if (event.type.startsWith('public.products.')) await onProduct(event, ctx);
    else await onOrder(event, ctx);
  },
});

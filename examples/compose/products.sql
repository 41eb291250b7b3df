-- The table the shop demo's capture reads, run by the postgres image at its first start
-- (docker-entrypoint-initdb.d). The same rows as `tributary dev`'s demo.
create table if not exists public.products (
  id integer primary key,
  name text not null,
  price numeric(10, 2) not null,
  stock integer not null
);
insert into public.products values
  (1, 'Espresso beans 1kg', 24.5, 50),
  (2, 'Pour-over kettle', 59, 60),
  (3, 'Ceramic mug', 12, 70),
  (4, 'Hand grinder', 89.9, 80),
  (5, 'Paper filters (100)', 6.5, 90),
  (6, 'Milk frother', 34, 100),
  (7, 'Cold brew jar', 27.75, 110),
  (8, 'Scale 0.1g', 42, 120)
on conflict (id) do nothing;

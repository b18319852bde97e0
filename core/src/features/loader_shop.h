/* loader_shop.h — start-up for the shop's features (loader_shop.c). */
#ifndef TALLY_LOADER_SHOP_H
#define TALLY_LOADER_SHOP_H

#include "loader.h"

/* Hook restore, after live's (loader_live.c): the item columns of migration
 * 004, serial numbers taken, co-op shares of kept purchases, redemptions,
 * raffle entries and draws still due, audience, highlights, merch, held tip
 * messages. */
int tally__load_shop(loader *l, int64_t now_ms);

#endif

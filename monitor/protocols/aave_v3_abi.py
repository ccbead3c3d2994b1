"""The Aave V3 functions and events liqmon uses, as signatures (checked by
tests/unit/test_aave_abi.py against the ``@aave/core-v3`` 1.19.3 artifacts, and those in
:data:`ORIGIN_ONLY` against the ``@aave-dao/aave-v3-origin`` 3.6.0 ``IPool.sol``)."""

from __future__ import annotations

from monitor.chain.abi import event_topic, fn

# PoolAddressesProvider
GET_POOL = fn("getPool()", "address")
GET_PRICE_ORACLE = fn("getPriceOracle()", "address")
GET_POOL_DATA_PROVIDER = fn("getPoolDataProvider()", "address")
GET_POOL_CONFIGURATOR = fn("getPoolConfigurator()", "address")
GET_ACL_MANAGER = fn("getACLManager()", "address")
GET_MARKET_ID = fn("getMarketId()", "string")
SET_ACL_ADMIN = fn("setACLAdmin(address)")
SET_ACL_MANAGER = fn("setACLManager(address)")
SET_POOL_IMPL = fn("setPoolImpl(address)")
SET_POOL_CONFIGURATOR_IMPL = fn("setPoolConfiguratorImpl(address)")
SET_POOL_DATA_PROVIDER = fn("setPoolDataProvider(address)")
SET_PRICE_ORACLE = fn("setPriceOracle(address)")

# ACLManager
ADD_POOL_ADMIN = fn("addPoolAdmin(address)")

# Pool
RESERVE_DATA_TYPE = (
    "((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,"
    "address,address,address,address,uint128,uint128,uint128)"
)
GET_RESERVES_LIST = fn("getReservesList()", "address[]")
GET_RESERVE_DATA = fn("getReserveData(address)", RESERVE_DATA_TYPE)
GET_NORMALIZED_INCOME = fn("getReserveNormalizedIncome(address)", "uint256")
GET_NORMALIZED_DEBT = fn("getReserveNormalizedVariableDebt(address)", "uint256")
GET_EMODE_CATEGORY_DATA = fn("getEModeCategoryData(uint8)", "(uint16,uint16,uint16,address,string)")
GET_USER_ACCOUNT_DATA = fn("getUserAccountData(address)", "uint256,uint256,uint256,uint256,uint256,uint256")
GET_USER_CONFIGURATION = fn("getUserConfiguration(address)", "uint256")
GET_USER_EMODE = fn("getUserEMode(address)", "uint256")
POOL_REVISION = fn("POOL_REVISION()", "uint256")
SUPPLY = fn("supply(address,uint256,address,uint16)")
BORROW = fn("borrow(address,uint256,uint256,uint16,address)")
REPAY = fn("repay(address,uint256,uint256,address)", "uint256")
SET_USER_EMODE = fn("setUserEMode(uint8)")
LIQUIDATION_CALL = fn("liquidationCall(address,address,address,uint256,bool)")

# Pool, newer revisions (aave-v3-origin): 3.1 grace periods, 3.2 liquid eMode, 3.3 deficit,
# 3.4 the pool-wide rate strategy, 3.6 the LTV-zero bitmap
GET_LIQUIDATION_GRACE_PERIOD = fn("getLiquidationGracePeriod(address)", "uint40")
GET_EMODE_COLLATERAL_CONFIG = fn("getEModeCategoryCollateralConfig(uint8)", "(uint16,uint16,uint16)")
GET_EMODE_COLLATERAL_BITMAP = fn("getEModeCategoryCollateralBitmap(uint8)", "uint128")
GET_EMODE_BORROWABLE_BITMAP = fn("getEModeCategoryBorrowableBitmap(uint8)", "uint128")
GET_EMODE_LABEL = fn("getEModeCategoryLabel(uint8)", "string")
GET_RESERVE_DEFICIT = fn("getReserveDeficit(address)", "uint256")
RESERVE_INTEREST_RATE_STRATEGY = fn("RESERVE_INTEREST_RATE_STRATEGY()", "address")
GET_EMODE_LTVZERO_BITMAP = fn("getEModeCategoryLtvzeroBitmap(uint8)", "uint128")
ORIGIN_ONLY = (
    GET_LIQUIDATION_GRACE_PERIOD,
    GET_EMODE_COLLATERAL_CONFIG,
    GET_EMODE_COLLATERAL_BITMAP,
    GET_EMODE_BORROWABLE_BITMAP,
    GET_EMODE_LABEL,
    GET_RESERVE_DEFICIT,
    RESERVE_INTEREST_RATE_STRATEGY,
    GET_EMODE_LTVZERO_BITMAP,
)

# PoolConfigurator
INIT_RESERVES = fn(
    "initReserves((address,address,address,uint8,address,address,address,address,"
    "string,string,string,string,string,string,bytes)[])"
)
CONFIGURE_COLLATERAL = fn("configureReserveAsCollateral(address,uint256,uint256,uint256)")
SET_RESERVE_BORROWING = fn("setReserveBorrowing(address,bool)")
SET_RESERVE_FACTOR = fn("setReserveFactor(address,uint256)")
SET_EMODE_CATEGORY = fn("setEModeCategory(uint8,uint16,uint16,uint16,address,string)")
SET_ASSET_EMODE_CATEGORY = fn("setAssetEModeCategory(address,uint8)")

# AaveOracle and the data provider
GET_ASSETS_PRICES = fn("getAssetsPrices(address[])", "uint256[]")
GET_SOURCE_OF_ASSET = fn("getSourceOfAsset(address)", "address")
BASE_CURRENCY_UNIT = fn("BASE_CURRENCY_UNIT()", "uint256")
GET_ALL_RESERVES_TOKENS = fn("getAllReservesTokens()", "(string,address)[]")

# tokens
SCALED_BALANCE_OF = fn("scaledBalanceOf(address)", "uint256")
BALANCE_OF = fn("balanceOf(address)", "uint256")
TOTAL_SUPPLY = fn("totalSupply()", "uint256")
DECIMALS = fn("decimals()", "uint8")
MINT = fn("mint(address,uint256)", "bool")
APPROVE = fn("approve(address,uint256)", "bool")

# events: Borrow(reserve indexed, user, onBehalfOf indexed, amount, mode, rate, referral indexed)
BORROW_EVENT = "Borrow(address,address,address,uint256,uint8,uint256,uint16)"
BORROW_TOPIC = event_topic(BORROW_EVENT)
